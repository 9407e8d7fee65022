"""The wire format of a delivery: UTF-8 JSON of `Delivery.to_payload()`."""

from __future__ import annotations

import json

from smsgw_core.outbox import Delivery

CONTENT_TYPE = "application/json"
# Headers a dead-lettered message carries, so whoever inspects the queue sees why.
DEAD_LETTER_REASON = "x-smsgw-error"
DEAD_LETTER_SOURCE = "x-smsgw-source-queue"


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
