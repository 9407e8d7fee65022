"""Distributed tracing with OpenTelemetry: one trace per SMS, from the API to the operator.

Configured from the standard OTEL_* variables. It is **off** unless
`OTEL_TRACES_EXPORTER` names an exporter (`console`, `otlp`, or both,
comma-separated); off, no SDK provider is installed and every helper here is a
shortcut that costs next to nothing (an `if`).

The trace context travels as a W3C carrier (`traceparent`, `tracestate`), a
plain `dict[str, str]` the core stores opaquely:

    API request span ──capture()──► SendSms.trace ─► Delivery.trace (outbox payload)
      └ sms.publish   (TracedBus, child of Delivery.trace; its own context replaces it,
         │              and RabbitMQ carries it in the message headers too)
         └ sms.deliver   (traced_handler, child of the message's carrier)
            └ sms.operator.send  (one per try; HTTP operators inject it into the request)

Spans carry `smsgw.*` attributes: user_id, sms_identifier, type, operator, outcome.
Tests and benchmarks install a provider of their own with `install()`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import replace
from typing import IO, Any, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from smsgw_core.operators import OperatorError, OutgoingSms
from smsgw_core.outbox import Delivery
from smsgw_core.ports import MessageBus

delivery_log = logging.getLogger("smsgw.delivery")

TRACER_NAME = "smsgw"

# Span attributes, namespaced.
USER_ID = "smsgw.user_id"
SMS_IDENTIFIER = "smsgw.sms_identifier"
TYPE = "smsgw.type"
OPERATOR = "smsgw.operator"
OUTCOME = "smsgw.outcome"
RECIPIENTS = "smsgw.recipients"
DONE = "smsgw.done"
FAILED = "smsgw.failed"
SKIPPED = "smsgw.skipped"

# Span names.
PUBLISH_SPAN = "sms.publish"
DELIVER_SPAN = "sms.deliver"
OPERATOR_SPAN = "sms.operator.send"

EXPORTERS = ("console", "otlp")

T = TypeVar("T")


class TracingConfigError(ValueError):
    """An OTEL_* variable this process cannot honour (the CLI exits 2)."""


class _State:
    provider: TracerProvider | None = None
    tracer: Tracer | None = None  # None: tracing off, every helper short-circuits


_state = _State()


# --- configuration ----------------------------------------------------------------------------


def exporters_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The exporters `OTEL_TRACES_EXPORTER` names; () when tracing is off.

    Unlike the OTel default (`otlp`), unset means off: a gateway traces only
    when told where to. `OTEL_SDK_DISABLED=true` turns it off whatever else says.
    """
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    raw = env.get("OTEL_TRACES_EXPORTER", "none")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in (*EXPORTERS, "none")]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: expected none, console or otlp (comma-separated)"
        )
    protocol = env.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    if "otlp" in names and protocol not in ("", "http/protobuf"):
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is supported"
        )
    return tuple(dict.fromkeys(n for n in names if n != "none"))


def configure_tracing(
    env: Mapping[str, str] | None = None,
    *,
    service_name: str = "smsgw",
    console: IO[str] | None = None,
    set_global: bool = True,
) -> TracerProvider | None:
    """Install a provider with the exporters OTEL_TRACES_EXPORTER names, or nothing.

    `service_name` is the default of `service.name`; OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES override it. The sampler (OTEL_TRACES_SAMPLER),
    the batch processor (OTEL_BSP_*) and the OTLP exporter
    (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT…) read their own
    variables. Called once per process; returns the provider to shut down at exit.
    """
    exporters = exporters_from_env(env)
    if not exporters:
        install(None)
        return None
    if env is None:
        # The stable HTTP attribute names (http.response.status_code…), not the
        # instrumentation's old default; read when the HTTP instrumentation starts.
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    provider = TracerProvider(resource=_resource(service_name))
    for name in exporters:
        if name == "console":
            # Synchronous: a span is one JSON line, written whole, beside the JSON logs.
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
                out=console or sys.stdout, formatter=span_json_line,
            )))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    if set_global:  # for any library instrumentation that asks the API for a tracer
        trace.set_tracer_provider(provider)
    return provider


def _resource(service_name: str) -> Resource:
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    return resource


def span_json_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def install(provider: trace.TracerProvider | None) -> None:
    """Trace smsgw's spans with `provider` (None: off). Tests install one whose
    processor feeds an InMemorySpanExporter; the API's global provider is left alone."""
    _state.provider = provider if isinstance(provider, TracerProvider) else None
    _state.tracer = None if provider is None else provider.get_tracer(TRACER_NAME)


def shutdown() -> None:
    """Flush and stop the installed provider's exporters (at process exit)."""
    provider = _state.provider
    install(None)
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _state.tracer is not None


def provider() -> TracerProvider | None:
    """The installed SDK provider (for the HTTP server instrumentation), None when off."""
    return _state.provider


# --- propagation ------------------------------------------------------------------------------


def capture() -> dict[str, str]:
    """The current trace context as a carrier (for SendSms.trace); {} with no span or when off."""
    if _state.tracer is None:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def inject(headers: MutableMapping[str, Any], span: Span | None = None) -> MutableMapping[str, Any]:
    """Add the trace context (of `span`, or the current one) to HTTP or message headers."""
    if _state.tracer is not None:
        context = trace.set_span_in_context(span) if span is not None else None
        propagate.inject(headers, context=context)
    return headers


def carrier_of(span: Span) -> dict[str, str]:
    """The carrier whose extraction makes `span` the parent."""
    carrier: dict[str, str] = {}
    inject(carrier, span)
    return carrier


def carrier_from_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """The trace fields (traceparent, tracestate, baggage) among message headers."""
    if not headers:
        return {}
    carrier: dict[str, str] = {}
    for name in propagated_fields():
        value = headers.get(name)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, str) and value:
            carrier[name] = value
    return carrier


def propagated_fields() -> frozenset[str]:
    """The header names the configured propagator reads and writes."""
    return frozenset(propagate.get_global_textmap().fields)


def extract(carrier: Mapping[str, str] | None) -> Context | None:
    """The context a carrier names (None for an empty one: the span becomes a root)."""
    if not carrier:
        return None
    return propagate.extract(carrier, context=Context())


# --- spans ------------------------------------------------------------------------------------


_NO_SPAN: contextlib.nullcontext[Span] = contextlib.nullcontext(trace.INVALID_SPAN)


def child_span(
    name: str,
    carrier: Mapping[str, str] | None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int] | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """A current span, child of the context in `carrier` (of the current one when empty).

    An exception escaping it is recorded and sets the status to ERROR.
    """
    tracer = _state.tracer
    if tracer is None:
        return _NO_SPAN
    context = extract(carrier) if carrier else None
    return tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=attributes
    )


def start_child_span(
    name: str,
    carrier: Mapping[str, str] | None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int] | None = None,
) -> Span:
    """A span that is not made current (end it yourself): for one of a batch."""
    tracer = _state.tracer
    if tracer is None:
        return trace.INVALID_SPAN
    context = extract(carrier) if carrier else None
    return tracer.start_span(name, context=context, kind=kind, attributes=attributes)


def delivery_attributes(delivery: Delivery) -> dict[str, str | int]:
    return {
        USER_ID: delivery.user_id,
        SMS_IDENTIFIER: delivery.sms_identifier,
        TYPE: delivery.type.value,
        RECIPIENTS: len(delivery.recipients),
    }


def _fail(span: Span, exc: BaseException, outcome: str) -> None:
    span.set_attribute(OUTCOME, outcome)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))


class TracedBus:
    """A MessageBus whose every published delivery gets a span `sms.publish`.

    The span is a child of the delivery's trace (the accepting request), and the
    delivery goes on with the span's own context in `Delivery.trace`: the
    in-process bus carries it as is, RabbitBus also copies it into the message
    headers. The batch is published in one call, as the inner bus expects.
    """

    def __init__(self, inner: MessageBus, system: str = "") -> None:
        self.inner = inner
        self.system = system  # messaging.system: "rabbitmq", "inprocess"

    async def publish(self, deliveries: Sequence[Delivery]) -> None:
        if _state.tracer is None:
            await self.inner.publish(deliveries)
            return
        spans: list[Span] = []
        traced: list[Delivery] = []
        for delivery in deliveries:
            attributes = delivery_attributes(delivery)
            if self.system:
                attributes["messaging.system"] = self.system
            span = start_child_span(
                PUBLISH_SPAN, delivery.trace, kind=SpanKind.PRODUCER, attributes=attributes
            )
            spans.append(span)
            traced.append(replace(delivery, trace=carrier_of(span)))
        try:
            await self.inner.publish(traced)
        except BaseException as exc:
            for span in spans:
                _fail(span, exc, "failed")
            raise
        else:
            for span in spans:
                span.set_attribute(OUTCOME, "published")
        finally:
            for span in spans:
                span.end()


def traced_handler(
    handler: Callable[[Delivery], Awaitable[T]],
) -> Callable[[Delivery], Awaitable[T]]:
    """`handler` (Deliverer.deliver) run inside a span `sms.deliver`, child of the
    delivery's carrier (`Delivery.trace`; RabbitConsumer puts the message headers' there)."""

    async def deliver(delivery: Delivery) -> T:
        if _state.tracer is None:
            return await handler(delivery)
        with child_span(
            DELIVER_SPAN, delivery.trace, kind=SpanKind.CONSUMER,
            attributes=delivery_attributes(delivery),
        ) as span:
            try:
                result = await handler(delivery)
            except BaseException:
                span.set_attribute(OUTCOME, "error")
                raise
            _report_delivery(span, result)
            return result

    return deliver


def _report_delivery(span: Span, report: object) -> None:
    counts = {key: getattr(report, name, None) for key, name in
              ((DONE, "done"), (FAILED, "failed"), (SKIPPED, "skipped"))}
    if not all(isinstance(v, int) for v in counts.values()):
        span.set_attribute(OUTCOME, "handled")
        return
    for key, value in counts.items():
        span.set_attribute(key, int(value or 0))
    done, failed = int(counts[DONE] or 0), int(counts[FAILED] or 0)
    outcome = ("partial" if done and failed else "delivered" if done
               else "failed" if failed else "skipped")
    span.set_attribute(OUTCOME, outcome)


def sms_identifier_of(sms: OutgoingSms) -> str:
    """The SMS identifier in a reference `<sms_identifier>:<recipient>`."""
    return sms.reference.rpartition(":")[0] or sms.reference


@contextlib.contextmanager
def _operator_call(operator: str, sms: OutgoingSms, tracer: Tracer | None) -> Iterator[Span]:
    sms_identifier = sms_identifier_of(sms)
    event: dict[str, str] = {
        "sms_identifier": sms_identifier, "recipient": sms.recipient, "operator": operator,
    }
    span_cm: contextlib.AbstractContextManager[Span] = _NO_SPAN
    if tracer is not None:
        span_cm = tracer.start_as_current_span(
            OPERATOR_SPAN, kind=SpanKind.CLIENT,
            attributes={OPERATOR: operator, SMS_IDENTIFIER: sms_identifier},
            record_exception=False, set_status_on_exception=False,
        )
    with span_cm as span:
        try:
            yield span
        except OperatorError as exc:
            span.set_attribute(OUTCOME, exc.error_class.value)
            span.set_status(Status(StatusCode.ERROR, exc.reason[:300]))
            level = logging.WARNING if exc.transient else logging.INFO
            delivery_log.log(level, "operator %s did not take the sms: %s", operator, exc.reason,
                             extra={**event, "outcome": exc.error_class.value})
            raise
        except BaseException as exc:
            _fail(span, exc, "error")
            raise
        else:
            span.set_attribute(OUTCOME, "sent")
            delivery_log.info("sms sent", extra={**event, "outcome": "sent"})


def operator_span(operator: str, sms: OutgoingSms) -> contextlib.AbstractContextManager[Span]:
    """One try of one operator for one recipient: a client span, and a log line.

    The span's outcome is `sent`, `transient` or `permanent` (from the
    OperatorError), or `error`; inside it, `inject(headers)` passes the trace on
    to the operator. The line (logger `smsgw.delivery`) says what became of the
    try, at INFO (WARNING for a transient failure), with the recipient masked.
    With tracing off only the line is written.
    """
    return _operator_call(operator, sms, _state.tracer)


def annotate(attributes: Mapping[str, str | int]) -> None:
    """Add smsgw attributes to the current span (the API's request span)."""
    if _state.tracer is not None:
        trace.get_current_span().set_attributes(attributes)
