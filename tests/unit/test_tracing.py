"""Tracing helpers: configuration from OTEL_*, propagation through carriers, the smsgw spans."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from smsgw_adapters.observability import tracing
from smsgw_core.messages import MessageType
from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms
from smsgw_core.outbox import DeliveryJob
from smsgw_core.services.deliver import DeliveryCounts

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = int("0af7651916cd43dd8448eb211c80319c", 16)
PARENT_SPAN_ID = int("b7ad6b7169203331", 16)


@pytest.fixture(autouse=True)
def _off_after() -> Iterator[None]:
    yield
    tracing.install(None)


def delivery(trace_carrier: dict[str, str] | None = None, sms: str = "sms-1") -> DeliveryJob:
    return DeliveryJob(sms, 7, MessageType.EXPRESS, "hello", ("+989121234567", "0912000001"), 3,
                    trace=trace_carrier or {})


def by_name(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


class RecordingBus:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[DeliveryJob] = []
        self.fail = fail

    async def publish(self, deliveries: Sequence[DeliveryJob]) -> None:
        if self.fail:
            raise RuntimeError("broker away")
        self.published.extend(deliveries)


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "expected"), [
    ({}, ()),
    ({"OTEL_TRACES_EXPORTER": "none"}, ()),
    ({"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
    ({"OTEL_TRACES_EXPORTER": " OTLP "}, ("otlp",)),
    ({"OTEL_TRACES_EXPORTER": "console,otlp,console"}, ("console", "otlp")),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, ("otlp",)),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, ()),
])
def test_exporters_from_env(env: dict[str, str], expected: tuple[str, ...]) -> None:
    assert tracing.exporters_from_env(env) == expected


@pytest.mark.parametrize("env", [
    {"OTEL_TRACES_EXPORTER": "jaeger"},
    {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
])
def test_unsupported_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(tracing.TracingConfigError, match="OTEL_"):
        tracing.exporters_from_env(env)


def test_off_by_default_installs_nothing() -> None:
    assert tracing.configure_tracing({}, set_global=False) is None
    assert not tracing.enabled()
    assert tracing.provider() is None
    assert tracing.capture() == {}
    with tracing.child_span("x", {"traceparent": TRACEPARENT}) as span:
        assert not span.is_recording()
    assert tracing.inject({}) == {}
    assert tracing.start_child_span("x", {}) is trace.INVALID_SPAN


def test_console_exporter_writes_one_json_line_per_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    out = io.StringIO()
    provider = tracing.configure_tracing(
        {"OTEL_TRACES_EXPORTER": "console"}, service_name="smsgw-test", console=out,
        set_global=False,
    )
    assert provider is not None and tracing.enabled()
    with tracing.child_span("one", {"traceparent": TRACEPARENT}):
        pass
    tracing.shutdown()
    assert not tracing.enabled()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    span = json.loads(lines[0])
    assert span["name"] == "one"
    assert span["context"]["trace_id"] == "0x0af7651916cd43dd8448eb211c80319c"
    assert span["resource"]["attributes"]["service.name"] == "smsgw-test"


def test_otel_service_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-eu")
    provider = tracing.configure_tracing(
        {"OTEL_TRACES_EXPORTER": "console"}, console=io.StringIO(), set_global=False
    )
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "gateway-eu"
    tracing.shutdown()


def test_otlp_exporter_is_batched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    provider = tracing.configure_tracing({"OTEL_TRACES_EXPORTER": "otlp"}, set_global=False)
    assert provider is not None
    processors = provider._active_span_processor._span_processors
    assert [type(p).__name__ for p in processors] == ["BatchSpanProcessor"]
    provider.shutdown()


# --- propagation ------------------------------------------------------------------------------


def test_capture_is_the_current_span(spans: InMemorySpanExporter) -> None:
    assert tracing.capture() == {}  # no span yet
    with tracing.child_span("request", None) as span:
        carrier = tracing.capture()
    context = span.get_span_context()
    version, trace_id, span_id, _flags = carrier["traceparent"].split("-")
    assert (version, trace_id, span_id) == (
        "00", trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)
    )


def test_child_span_continues_the_carriers_trace(spans: InMemorySpanExporter) -> None:
    with tracing.child_span("child", {"traceparent": TRACEPARENT}, kind=SpanKind.CONSUMER,
                            attributes={tracing.USER_ID: 7}):
        pass
    (span,) = spans.get_finished_spans()
    assert span.context.trace_id == TRACE_ID
    assert span.parent is not None and span.parent.span_id == PARENT_SPAN_ID
    assert span.kind is SpanKind.CONSUMER
    assert span.attributes == {tracing.USER_ID: 7}


def test_child_span_of_nothing_is_a_root(spans: InMemorySpanExporter) -> None:
    with tracing.child_span("root", {}):
        pass
    (span,) = spans.get_finished_spans()
    assert span.parent is None


def test_a_failing_child_span_records_the_error(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError), tracing.child_span("boom", {}):
        raise ValueError("no")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].name == "exception"


def test_inject_and_read_back_headers(spans: InMemorySpanExporter) -> None:
    with tracing.child_span("outer", {"traceparent": TRACEPARENT}):
        headers = tracing.inject({"content-type": "application/json"})
    assert headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    amqp = {"traceparent": headers["traceparent"].encode(), "x-delivery-count": 2,
            "tracestate": "", "other": "x"}
    assert tracing.carrier_from_headers(amqp) == {"traceparent": headers["traceparent"]}
    assert tracing.carrier_from_headers(None) == {}


# --- the smsgw spans --------------------------------------------------------------------------


async def test_traced_bus_publishes_each_delivery_in_a_child_span(
    spans: InMemorySpanExporter,
) -> None:
    inner = RecordingBus()
    bus = tracing.TracedBus(inner, system="inprocess")
    await bus.publish([delivery({"traceparent": TRACEPARENT}, "a"), delivery({}, "b")])
    publish = by_name(spans, tracing.PUBLISH_SPAN)
    assert len(publish) == 2
    first, second = sorted(publish, key=lambda s: str((s.attributes or {})[tracing.SMS_IDENTIFIER]))
    assert first.context.trace_id == TRACE_ID and first.parent is not None
    assert first.parent.span_id == PARENT_SPAN_ID
    assert second.parent is None  # a delivery accepted without a trace starts one
    assert first.kind is SpanKind.PRODUCER
    assert first.attributes == {
        tracing.USER_ID: 7, tracing.SMS_IDENTIFIER: "a", tracing.TYPE: "express",
        tracing.RECIPIENTS: 2, "messaging.system": "inprocess", tracing.OUTCOME: "published",
    }
    # what goes on the bus names the publish span as parent
    carried = {d.sms_identifier: d.trace["traceparent"] for d in inner.published}
    assert carried["a"] == (
        f"00-{trace.format_trace_id(TRACE_ID)}-{trace.format_span_id(first.context.span_id)}-01"
    )


async def test_traced_bus_marks_every_span_of_a_failed_batch(
    spans: InMemorySpanExporter,
) -> None:
    with pytest.raises(RuntimeError):
        await tracing.TracedBus(RecordingBus(fail=True)).publish([delivery(), delivery()])
    publish = by_name(spans, tracing.PUBLISH_SPAN)
    assert len(publish) == 2
    assert all(s.status.status_code is StatusCode.ERROR for s in publish)
    assert all((s.attributes or {})[tracing.OUTCOME] == "failed" for s in publish)


async def test_traced_bus_off_passes_deliveries_unchanged() -> None:
    inner = RecordingBus()
    sent = [delivery({"traceparent": TRACEPARENT})]
    await tracing.TracedBus(inner).publish(sent)
    assert inner.published == sent


async def test_traced_handler_runs_inside_sms_deliver(spans: InMemorySpanExporter) -> None:
    seen: list[str] = []

    async def deliver(d: DeliveryJob) -> DeliveryCounts:
        seen.append(tracing.capture()["traceparent"])
        return DeliveryCounts(done=1, failed=1, skipped=0)

    report = await tracing.traced_handler(deliver)(delivery({"traceparent": TRACEPARENT}))
    assert report == DeliveryCounts(1, 1, 0)
    (span,) = by_name(spans, tracing.DELIVER_SPAN)
    assert span.kind is SpanKind.CONSUMER
    assert span.context.trace_id == TRACE_ID
    assert span.parent is not None and span.parent.span_id == PARENT_SPAN_ID
    assert span.attributes is not None
    assert span.attributes[tracing.OUTCOME] == "partial"
    assert (span.attributes[tracing.DONE], span.attributes[tracing.FAILED]) == (1, 1)
    assert seen == [f"00-{trace.format_trace_id(TRACE_ID)}-"
                    f"{trace.format_span_id(span.context.span_id)}-01"]


@pytest.mark.parametrize(("report", "outcome"), [
    (DeliveryCounts(2, 0, 0), "delivered"),
    (DeliveryCounts(0, 2, 0), "failed"),
    (DeliveryCounts(0, 0, 2), "skipped"),
    (None, "handled"),
])
async def test_deliver_outcomes(
    spans: InMemorySpanExporter, report: DeliveryCounts | None, outcome: str
) -> None:
    async def deliver(d: DeliveryJob) -> DeliveryCounts | None:
        return report

    await tracing.traced_handler(deliver)(delivery())
    (span,) = by_name(spans, tracing.DELIVER_SPAN)
    assert span.attributes is not None and span.attributes[tracing.OUTCOME] == outcome


async def test_a_failing_handler_marks_its_span(spans: InMemorySpanExporter) -> None:
    async def deliver(d: DeliveryJob) -> None:
        raise ConnectionError("database away")

    with pytest.raises(ConnectionError):
        await tracing.traced_handler(deliver)(delivery())
    (span,) = by_name(spans, tracing.DELIVER_SPAN)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes[tracing.OUTCOME] == "error"


def sms() -> OutgoingSms:
    return OutgoingSms("+989121234567", "hello", "6f1c-uuid:+989121234567")


def test_operator_span_outcomes(spans: InMemorySpanExporter) -> None:
    with tracing.child_span(tracing.DELIVER_SPAN, {"traceparent": TRACEPARENT}):
        with tracing.operator_span("A", sms()):
            headers = tracing.inject({})
        for error_class in ErrorClass:
            with pytest.raises(OperatorError), tracing.operator_span("B", sms()):
                raise OperatorError("B", error_class, "HTTP 503")
        with pytest.raises(KeyError), tracing.operator_span("C", sms()):
            raise KeyError("bug")
    sent, transient, permanent, bug = by_name(spans, tracing.OPERATOR_SPAN)
    (parent,) = by_name(spans, tracing.DELIVER_SPAN)
    for span in (sent, transient, permanent, bug):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == parent.context.span_id
        assert span.attributes is not None
        assert span.attributes[tracing.SMS_IDENTIFIER] == "6f1c-uuid"
    assert sent.attributes == {
        tracing.OPERATOR: "A", tracing.SMS_IDENTIFIER: "6f1c-uuid", tracing.OUTCOME: "sent"
    }
    assert headers["traceparent"].split("-")[2] == trace.format_span_id(sent.context.span_id)
    assert sent.status.status_code is StatusCode.UNSET
    outcomes = [s.attributes[tracing.OUTCOME] for s in (transient, permanent, bug)
                if s.attributes is not None]
    assert outcomes == ["transient", "permanent", "error"]
    assert all(s.status.status_code is StatusCode.ERROR for s in (transient, permanent, bug))


def test_operator_span_off_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "smsgw.delivery")
    with tracing.operator_span("A", sms()) as span:
        assert span is trace.INVALID_SPAN
    with pytest.raises(OperatorError), tracing.operator_span("B", sms()):
        raise OperatorError("B", ErrorClass.TRANSIENT, "HTTP 503")
    sent, failed = caplog.records
    assert (sent.levelno, sent.getMessage()) == (logging.DEBUG, "sms sent")
    assert vars(sent)["recipient"] == "+989121234567"  # the formatter masks it
    assert vars(sent)["sms_identifier"] == "6f1c-uuid"
    assert (vars(sent)["operator"], vars(sent)["outcome"]) == ("A", "sent")
    assert failed.levelno == logging.WARNING
    assert failed.getMessage() == "operator B did not take the sms: HTTP 503"
    assert vars(failed)["outcome"] == "transient"


def test_annotate_sets_attributes_on_the_current_span(spans: InMemorySpanExporter) -> None:
    tracing.annotate({tracing.USER_ID: 1})  # no current span: nothing happens
    with tracing.child_span("request", None):
        tracing.annotate({tracing.USER_ID: 7, tracing.SMS_IDENTIFIER: "x"})
    (span,) = spans.get_finished_spans()
    assert span.attributes == {tracing.USER_ID: 7, tracing.SMS_IDENTIFIER: "x"}


def test_the_cli_refuses_an_unknown_exporter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from smsgw_app import cli

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    try:
        assert cli.main(["migrate"]) == 2
    finally:
        logging.captureWarnings(False)
        root.handlers = saved[0]
        root.setLevel(saved[1])
    assert capsys.readouterr().err == (
        "smsgw: configuration error: OTEL_TRACES_EXPORTER='zipkin': "
        "expected none, console or otlp (comma-separated)\n"
    )
