"""The trace context as a W3C carrier (`traceparent`, `tracestate`): a plain
`dict[str, str]` the core stores opaquely, and message or HTTP headers."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span

from smsgw_adapters import trace_carrier
from smsgw_adapters.observability.tracing.state import enabled


def capture() -> dict[str, str]:
    """The current trace context as a carrier (for SendSms.trace); {} with no span or when off."""
    if not enabled():
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def inject(headers: MutableMapping[str, Any], span: Span | None = None) -> MutableMapping[str, Any]:
    """Add the trace context (of `span`, or the current one) to HTTP or message headers."""
    if enabled():
        context = trace.set_span_in_context(span) if span is not None else None
        propagate.inject(headers, context=context)
    return headers


def carrier_of(span: Span) -> dict[str, str]:
    """The carrier whose extraction makes `span` the parent."""
    carrier: dict[str, str] = {}
    inject(carrier, span)
    return carrier


def carrier_from_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """The configured propagator's fields among message headers."""
    return trace_carrier.carrier_from_headers(headers, propagated_fields())


def propagated_fields() -> frozenset[str]:
    """The header names the configured propagator reads and writes."""
    return frozenset(propagate.get_global_textmap().fields)


def extract(carrier: Mapping[str, str] | None) -> Context | None:
    """The context a carrier names (None for an empty one: the span becomes a root)."""
    if not carrier:
        return None
    return propagate.extract(carrier, context=Context())
