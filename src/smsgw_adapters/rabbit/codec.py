"""The wire format of a delivery: UTF-8 JSON of `Delivery.to_payload()`."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from smsgw_core.outbox import Delivery

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


def encode(delivery: Delivery) -> bytes:
    return json.dumps(delivery.to_payload(), ensure_ascii=False, separators=(",", ":")).encode()


def decode(body: bytes) -> Delivery:
    try:
        payload = json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise PoisonMessage(f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise PoisonMessage(f"body is JSON {type(payload).__name__}, not an object")
    try:
        return Delivery.from_payload(payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise PoisonMessage(f"not a delivery: {type(exc).__name__}: {exc}") from exc
