"""The wire format of a delivery, one for the outbox's JSON column and the bus
(where a message may carry a bundle of them: a JSON array).

A msgspec Struct of the same JSON object the gateway has always written
(`accepted_at` and `trace` left out when empty), so rows and messages written
before read the same; anything else is an `UndecodablePayload` naming why.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

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


T = TypeVar("T")

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Payload)
# A message body: one delivery (an object), or a bundle of them (an array of objects).
_BODY_DECODER = msgspec.json.Decoder(Payload | list[Payload])


def _payload(delivery: DeliveryJob) -> Payload:
    return Payload(
        delivery.sms_identifier, delivery.customer_id, delivery.type, delivery.text,
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
    return _delivery(_decoded(_DECODER, body))


def _decoded(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:  # a DecodeError too: it goes first
        raise UndecodablePayload(f"not a delivery: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise UndecodablePayload(f"body is not JSON: {exc}") from exc


def encode_many(deliveries: Sequence[DeliveryJob]) -> bytes:
    """Several deliveries as one body: a JSON array of what `encode` writes (one
    delivery alone is written as `encode` writes it)."""
    if len(deliveries) == 1:
        return encode(deliveries[0])
    return _ENCODER.encode([_payload(d) for d in deliveries])


def decode_many(body: bytes) -> list[DeliveryJob]:
    """The deliveries of a body `encode` or `encode_many` wrote; UndecodablePayload
    when it is neither (an empty array included)."""
    decoded = _decoded(_BODY_DECODER, body)
    if isinstance(decoded, Payload):
        return [_delivery(decoded)]
    if not decoded:
        raise UndecodablePayload("not a delivery: an empty bundle")
    return [_delivery(payload) for payload in decoded]


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
