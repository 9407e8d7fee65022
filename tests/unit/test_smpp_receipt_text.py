"""SMPP delivery receipts: the text read leniently, the TLVs as the fallback and the id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw_adapters.operators.smpp.pdu import DeliverSm, NetworkErrorCode, Tlvs
from smsgw_adapters.operators.smpp.receipt_text import (
    SmppReceipt,
    UnreadableReceipt,
    is_receipt,
    read_receipt,
    receipt_date,
    receipt_fields,
)
from smsgw_core.receipts import Reported

STANDARD = (
    "id:0123456789 sub:001 dlvrd:001 submit date:2403091335 done date:2403091336 "
    "stat:DELIVRD err:000 text:Your code is 1234"
)


def receipt(text: str | bytes = b"", esm_class: int = 0x04, **tlvs: object) -> DeliverSm:
    raw = text.encode("latin-1") if isinstance(text, str) else text
    return DeliverSm(sequence_number=1, esm_class=esm_class, short_message=raw,
                     tlvs=Tlvs(**tlvs))  # type: ignore[arg-type]


def test_the_standard_text() -> None:
    assert read_receipt(receipt(STANDARD)) == SmppReceipt(
        message_id="0123456789", reported=Reported.DELIVERED, state="DELIVRD",
        error_code="000", done_at=datetime(2024, 3, 9, 13, 36, tzinfo=UTC),
    )
    assert receipt_fields(STANDARD) == {
        "id": "0123456789", "sub": "001", "dlvrd": "001", "submit_date": "2403091335",
        "done_date": "2403091336", "stat": "DELIVRD", "err": "000", "text": "Your code is 1234",
    }


def test_twelve_digit_dates_keep_their_seconds() -> None:
    text = "id:abc sub:001 dlvrd:000 submit date:240309133501 done date:240309133659 stat:EXPIRED"
    got = read_receipt(receipt(text))
    assert got.done_at == datetime(2024, 3, 9, 13, 36, 59, tzinfo=UTC)
    assert got.reported is Reported.EXPIRED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2403091336", datetime(2024, 3, 9, 13, 36, tzinfo=UTC)),
        ("240309133659", datetime(2024, 3, 9, 13, 36, 59, tzinfo=UTC)),
        ("20240309133659", datetime(2024, 3, 9, 13, 36, 59, tzinfo=UTC)),
        ("", None), ("24030913", None), ("2413091336", None), ("24030913xx", None),
        ("2403091360", None),
    ],
)
def test_receipt_dates(value: str, expected: datetime | None) -> None:
    assert receipt_date(value) == expected


def test_a_date_in_the_smscs_local_time() -> None:
    tehran = timezone(timedelta(hours=3, minutes=30))
    assert receipt_date("2403091706", tehran) == datetime(2024, 3, 9, 13, 36, tzinfo=UTC)
    got = read_receipt(receipt("id:1 done date:2403091706 stat:DELIVRD"), zone=tehran)
    assert got.done_at == datetime(2024, 3, 9, 13, 36, tzinfo=UTC)


@pytest.mark.parametrize("err", ["000", "0", "0A", "0x1F", "ff", "123", "E1"])
def test_err_is_kept_as_sent_hex_or_decimal(err: str) -> None:
    assert read_receipt(receipt(f"id:9 stat:UNDELIV err:{err}")).error_code == err


@pytest.mark.parametrize(
    ("stat", "reported"),
    [
        ("DELIVRD", Reported.DELIVERED), ("EXPIRED", Reported.EXPIRED),
        ("UNDELIV", Reported.UNDELIVERED), ("REJECTD", Reported.UNDELIVERED),
        ("DELETED", Reported.UNDELIVERED), ("UNKNOWN", Reported.UNDELIVERED),
        ("ACCEPTD", None), ("ENROUTE", None), ("delivrd", Reported.DELIVERED),
        ("DELIVERED", Reported.DELIVERED), ("UNDELIVERABLE", Reported.UNDELIVERED),
        ("GIBBERISH", None),
    ],
)
def test_every_stat(stat: str, reported: Reported | None) -> None:
    got = read_receipt(receipt(f"id:1 stat:{stat}"))
    assert (got.reported, got.state) == (reported, stat.upper())


@pytest.mark.parametrize(
    "text",
    [
        "ID:77 SUB:001 DLVRD:001 SUBMIT DATE:2403091335 DONE DATE:2403091336 STAT:DELIVRD ERR:0",
        "id: 77   sub:001  dlvrd:001 submit_date:2403091335 done_date:2403091336 stat: DELIVRD",
        "stat:DELIVRD id:77 done  date:2403091336",
        "id:77 submit date:2403091335 done date:2403091336 stat:DELIVRD text:",
        "  id:77\tstat:DELIVRD\r\n done date:2403091336 ",
    ],
)
def test_a_lenient_reading(text: str) -> None:
    got = read_receipt(receipt(text))
    assert (got.message_id, got.reported) == ("77", Reported.DELIVERED)
    assert got.done_at == datetime(2024, 3, 9, 13, 36, tzinfo=UTC)


@pytest.mark.parametrize(
    "message_id",
    ["0123456789", "1a2b3c4d", "ABCDEF0123", "9f1c2a8e-5b3d-4e6f-a7b8-c9d0e1f2a3b4", "42"],
)
def test_ids_of_any_form(message_id: str) -> None:
    assert read_receipt(receipt(f"id:{message_id} stat:DELIVRD")).message_id == message_id


def test_the_text_field_takes_the_rest_whatever_it_holds() -> None:
    fields = receipt_fields("id:5 stat:UNDELIV err:001 text:id:6 stat:DELIVRD err:000")
    assert fields["id"] == "5"
    assert fields["text"] == "id:6 stat:DELIVRD err:000"
    assert read_receipt(receipt("id:5 stat:UNDELIV text:stat:DELIVRD")).reported is (
        Reported.UNDELIVERED
    )


def test_missing_fields() -> None:
    got = read_receipt(receipt("id:31 stat:DELIVRD"))
    assert got == SmppReceipt("31", Reported.DELIVERED, "DELIVRD", "", None)
    got = read_receipt(receipt("id:31"))
    assert got == SmppReceipt("31", None, "", "", None)


# --- the TLVs ---------------------------------------------------------------------------


def test_a_tlv_only_receipt() -> None:
    got = read_receipt(receipt(b"", receipted_message_id="m-1", message_state=5,
                               network_error_code=NetworkErrorCode(3, 34)))
    assert got == SmppReceipt("m-1", Reported.UNDELIVERED, "UNDELIV", "3:34", None)


@pytest.mark.parametrize(
    ("state", "reported"),
    [(1, None), (2, Reported.DELIVERED), (3, Reported.EXPIRED), (4, Reported.UNDELIVERED),
     (5, Reported.UNDELIVERED), (6, None), (7, Reported.UNDELIVERED),
     (8, Reported.UNDELIVERED), (99, None)],
)
def test_every_message_state(state: int, reported: Reported | None) -> None:
    assert read_receipt(receipt(b"", receipted_message_id="x", message_state=state)).reported is (
        reported
    )


def test_the_tlv_id_wins_over_the_texts() -> None:
    # Some SMSCs print the id in decimal in the text, and as submit_sm_resp gave it in the TLV.
    got = read_receipt(receipt("id:3735928559 stat:DELIVRD", receipted_message_id="DEADBEEF"))
    assert got.message_id == "DEADBEEF"


def test_the_texts_state_and_error_win_over_the_tlvs() -> None:
    got = read_receipt(receipt("id:1 stat:REJECTD err:0B", message_state=2,
                               network_error_code=NetworkErrorCode(3, 1)))
    assert (got.reported, got.state, got.error_code) == (Reported.UNDELIVERED, "REJECTD", "0B")


def test_a_stat_not_known_falls_back_to_the_tlv() -> None:
    got = read_receipt(receipt("id:1 stat:WHATEVER", message_state=3))
    assert (got.reported, got.state) == (Reported.EXPIRED, "EXPIRED")


def test_the_text_may_come_in_message_payload_or_ucs2() -> None:
    got = read_receipt(receipt(b"", message_payload=STANDARD.encode()))
    assert (got.message_id, got.reported) == ("0123456789", Reported.DELIVERED)
    ucs2 = DeliverSm(sequence_number=1, esm_class=4, data_coding=8,
                     short_message=STANDARD.encode("utf-16-be"))
    assert read_receipt(ucs2).message_id == "0123456789"


# --- not a receipt ----------------------------------------------------------------------


@pytest.mark.parametrize(("esm_class", "receipt_or_not"),
                         [(0x04, True), (0x44, True), (0x07, True), (0x00, False),
                          (0x40, False), (0x08, False), (0x20, False), (0x0C, False)])
def test_only_an_smsc_delivery_receipt_is_a_receipt(esm_class: int, receipt_or_not: bool) -> None:
    assert is_receipt(esm_class) is receipt_or_not


def test_a_message_from_a_phone_is_not_read_as_a_receipt() -> None:
    with pytest.raises(UnreadableReceipt):
        read_receipt(receipt("id:1 stat:DELIVRD", esm_class=0x00))


@pytest.mark.parametrize("text", ["", "stat:DELIVRD err:000", "id: stat:DELIVRD", "hello"])
def test_a_receipt_without_an_id_is_unreadable(text: str) -> None:
    with pytest.raises(UnreadableReceipt):
        read_receipt(receipt(text))


@given(st.text(max_size=300), st.none() | st.text(max_size=20).filter(lambda s: "\0" not in s))
def test_any_text_reads_or_is_unreadable(text: str, receipted: str | None) -> None:
    deliver = receipt(text.encode("utf-8"), receipted_message_id=receipted)
    try:
        got = read_receipt(deliver)
    except UnreadableReceipt:
        return
    assert got.message_id
    assert got.done_at is None or got.done_at.tzinfo is UTC
