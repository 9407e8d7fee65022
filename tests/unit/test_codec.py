"""The delivery's wire format: today's bytes, read and written by the msgspec codec."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from smsgw_adapters import codec
from smsgw_core.messages import MessageType
from smsgw_core.outbox import DeliveryJob, UndecodablePayload

# What the gateway wrote before the codec was msgspec's (stdlib json, compact separators).
FULL = ('{"sms_identifier":"sms-1","user_id":3,"type":"express","text":"hi €",'
        '"recipients":["+989121234567","09121234568"],"unit_share":6,'
        '"accepted_at":"2026-01-02T03:04:05.123456+00:00",'
        '"trace":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}')
BARE = ('{"sms_identifier":"sms-2","user_id":9223372036854775807,"type":"normal","text":"x",'
        '"recipients":["09121234567"],"unit_share":1}')
FULL_DELIVERY = DeliveryJob(
    "sms-1", 3, MessageType.EXPRESS, "hi €", ("+989121234567", "09121234568"), 6,
    datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
)
BARE_DELIVERY = DeliveryJob(
    "sms-2", 2**63 - 1, MessageType.NORMAL, "x", ("09121234567",), 1
)


@pytest.mark.parametrize(("wire", "delivery"), [(FULL, FULL_DELIVERY), (BARE, BARE_DELIVERY)])
def test_the_bytes_written_before_read_the_same_and_are_written_the_same(
    wire: str, delivery: DeliveryJob
) -> None:
    assert codec.decode(wire.encode()) == delivery
    assert codec.encode(delivery) == wire.encode()
    assert codec.from_document(json.loads(wire)) == delivery
    assert codec.to_document(delivery) == json.loads(wire)


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"sms_identifier": "x"}', b"\xff\xfe",
    BARE.replace('"normal"', '"bulk"').encode(),
    BARE.replace('"unit_share":1', '"unit_share":"1"').encode(),
    FULL.replace("2026-01-02T03:04:05.123456+00:00", "yesterday").encode(),
])
def test_anything_else_is_undecodable(body: bytes) -> None:
    with pytest.raises(UndecodablePayload, match=r"^(body is not JSON|not a delivery): "):
        codec.decode(body)


def test_the_reason_says_whether_the_body_is_json() -> None:
    with pytest.raises(UndecodablePayload, match=r"^body is not JSON: "):
        codec.decode(b"not json")
    with pytest.raises(UndecodablePayload, match=r"^not a delivery: "):
        codec.decode(b'{"hello": 1}')


def test_a_stored_document_that_is_not_a_delivery_is_undecodable() -> None:
    for document in ({"sms_identifier": "x"}, [], None, {**json.loads(BARE), "user_id": "3"}):
        with pytest.raises(UndecodablePayload):
            codec.from_document(document)
