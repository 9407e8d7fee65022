"""The trace context carried in message headers: the W3C fields among a
message's headers, as the plain `dict[str, str]` the core stores opaquely.

Pure, and in no adapter of its own, so that the RabbitMQ adapter (which must
not import tracing state) and tracing (which knows the configured
propagator's fields) read headers with one function.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

# The W3C trace context fields; the composition root passes the configured
# propagator's own (tracing.propagated_fields()).
TRACE_FIELDS = ("traceparent", "tracestate", "baggage")


def carrier_from_headers(
    headers: Mapping[str, Any] | None, fields: Collection[str] = TRACE_FIELDS
) -> dict[str, str]:
    """The trace fields among message headers (or a delivery's carrier), as strings."""
    if not headers:
        return {}
    carrier: dict[str, str] = {}
    for name in fields:
        value = headers.get(name)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, str) and value:
            carrier[name] = value
    return carrier
