"""What a RabbitMQ message carries: the delivery (smsgw_adapters.codec), its trace
headers, and the reasons a dead-lettered one holds."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from smsgw_adapters import codec
from smsgw_core.outbox import DeliveryJob, UndecodablePayload

CONTENT_TYPE = "application/json"
# Headers a dead-lettered message carries, so whoever inspects the queue sees why.
DEAD_LETTER_REASON = "x-smsgw-error"
DEAD_LETTER_SOURCE = "x-smsgw-source-queue"


# The W3C trace context fields; the composition root passes the configured
# propagator's own (tracing), so this adapter needs no tracing state of its own.
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


class PoisonMessage(Exception):
    """A message no worker can ever handle: retrying it cannot help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(delivery: DeliveryJob) -> bytes:
    return codec.encode(delivery)


def decode(body: bytes) -> DeliveryJob:
    try:
        return codec.decode(body)
    except UndecodablePayload as exc:
        raise PoisonMessage(str(exc)) from exc
