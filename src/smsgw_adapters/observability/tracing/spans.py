"""Spans as children of a carrier, and the attributes every smsgw span shares."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from smsgw_adapters.observability.tracing.names import (
    OUTCOME,
    RECIPIENTS,
    SMS_IDENTIFIER,
    TYPE,
    USER_ID,
)
from smsgw_adapters.observability.tracing.propagation import extract
from smsgw_adapters.observability.tracing.state import tracer as current_tracer
from smsgw_core.outbox import DeliveryJob

NO_SPAN: contextlib.nullcontext[Span] = contextlib.nullcontext(trace.INVALID_SPAN)


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
    tracer = current_tracer()
    if tracer is None:
        return NO_SPAN
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
    tracer = current_tracer()
    if tracer is None:
        return trace.INVALID_SPAN
    context = extract(carrier) if carrier else None
    return tracer.start_span(name, context=context, kind=kind, attributes=attributes)


def delivery_attributes(delivery: DeliveryJob) -> dict[str, str | int]:
    return {
        USER_ID: delivery.customer_id,
        SMS_IDENTIFIER: delivery.sms_identifier,
        TYPE: delivery.type.value,
        RECIPIENTS: len(delivery.recipients),
    }


def fail(span: Span, exc: BaseException, outcome: str) -> None:
    """Mark `span` failed by `exc`, with `outcome` as its smsgw outcome."""
    span.set_attribute(OUTCOME, outcome)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))


def annotate(attributes: Mapping[str, str | int]) -> None:
    """Add smsgw attributes to the current span (the API's request span)."""
    if current_tracer() is not None:
        trace.get_current_span().set_attributes(attributes)
