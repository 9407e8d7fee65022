"""The wire format of a delivery, one for the outbox's JSON column and the bus.

A msgspec Struct of the same JSON object the gateway has always written
(`accepted_at` and `trace` left out when empty), so rows and messages written
before read the same; anything else is an `UndecodablePayload` naming why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from smsgw_core.messages import MessageType
from smsgw_core.outbox import DeliveryJob, UndecodablePayload


class Payload(msgspec.Struct, omit_defaults=True):
    sms_identifier: str
    user_id: int
    type: MessageType
    text: str
    recipients: list[str]
    unit_share: int
    # As datetime.isoformat() writes it (msgspec would write UTC as Z): the same bytes.
    accepted_at: str | None = None
    trace: dict[str, str] = {}


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Payload)


def _payload(delivery: DeliveryJob) -> Payload:
    return Payload(
        delivery.sms_identifier, delivery.user_id, delivery.type, delivery.text,
        list(delivery.recipients), delivery.unit_share,
        delivery.accepted_at.isoformat() if delivery.accepted_at is not None else None,
        dict(delivery.trace),
    )


def _delivery(payload: Payload) -> DeliveryJob:
    try:
        accepted_at = datetime.fromisoformat(payload.accepted_at) if payload.accepted_at else None
    except ValueError as exc:
        raise UndecodablePayload(f"not a delivery: accepted_at: {exc}") from exc
    return DeliveryJob(
        payload.sms_identifier, payload.user_id, payload.type, payload.text,
        tuple(payload.recipients), payload.unit_share,
        accepted_at, payload.trace,
    )


def encode(delivery: DeliveryJob) -> bytes:
    """The delivery as UTF-8 JSON: a message body."""
    return _ENCODER.encode(_payload(delivery))


def decode(body: bytes) -> DeliveryJob:
    """A message body's delivery; UndecodablePayload when it is not one."""
    try:
        return _delivery(_DECODER.decode(body))
    except msgspec.ValidationError as exc:  # a DecodeError too: it goes first
        raise UndecodablePayload(f"not a delivery: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise UndecodablePayload(f"body is not JSON: {exc}") from exc


def to_document(delivery: DeliveryJob) -> dict[str, Any]:
    """The delivery as a JSON document (the outbox's payload column)."""
    document: dict[str, Any] = msgspec.to_builtins(_payload(delivery))
    return document


def from_document(document: Any) -> DeliveryJob:
    """The delivery a JSON document holds; UndecodablePayload when it is not one."""
    try:
        return _delivery(msgspec.convert(document, Payload))
    except msgspec.ValidationError as exc:
        raise UndecodablePayload(f"not a delivery: {exc}") from exc
