"""SMPP message text: GSM-7 and UCS-2 on the wire, and the parts of a long text with their UDH."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pricing import SPEC_BASIC_TABLE, SPEC_EXTENSION, texts

from smsgw_adapters.operators.smpp.text import (
    DATA_CODING_GSM7,
    DATA_CODING_UCS2,
    ESM_CLASS_UDHI,
    GSM7_BASIC_TABLE,
    GSM7_EXTENSION_TABLE,
    Concatenation,
    MessagePart,
    ReceivedPart,
    decode_gsm7,
    encode_gsm7,
    read_short_message,
    reference_for,
    short_messages,
)
from smsgw_core.pricing import GSM7_BASIC, GSM7_EXTENSION, Encoding, parts, segment

# 3GPP TS 23.038 table 6.2.1.1, the extension table by code.
SPEC_EXTENSION_CODES = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}


def test_the_tables_are_the_spec_and_the_pricing_modules() -> None:
    assert len(GSM7_BASIC_TABLE) == 128
    for code, char in enumerate(SPEC_BASIC_TABLE):
        if char is not None:
            assert GSM7_BASIC_TABLE[code] == char
    assert {code: char for char, code in GSM7_EXTENSION_TABLE.items()} == SPEC_EXTENSION_CODES
    assert set(GSM7_EXTENSION_TABLE) == set(SPEC_EXTENSION) == GSM7_EXTENSION
    assert set(GSM7_BASIC_TABLE) - {"\x1b"} == GSM7_BASIC


@pytest.mark.parametrize(("code", "char"), [(c, ch) for c, ch in enumerate(SPEC_BASIC_TABLE)
                                             if ch is not None])
def test_every_basic_character(code: int, char: str) -> None:
    assert encode_gsm7(char) == bytes([code])
    assert decode_gsm7(bytes([code])) == char


@pytest.mark.parametrize(("code", "char"), sorted(SPEC_EXTENSION_CODES.items()))
def test_every_extension_character_is_escaped(code: int, char: str) -> None:
    assert encode_gsm7(char) == bytes([0x1B, code])
    assert decode_gsm7(bytes([0x1B, code])) == char


def test_gsm7_by_hand() -> None:
    assert encode_gsm7("Hi @ 5€!") == b"Hi \x00 5\x1b\x65!"
    assert encode_gsm7("") == b""


@pytest.mark.parametrize("char", ["`", "ç", "ж", "😀", "\x1b", "\t"])
def test_a_character_outside_gsm7_is_refused(char: str) -> None:
    with pytest.raises(ValueError, match="GSM-7"):
        encode_gsm7("ok" + char)


def test_decoding_gsm7_is_lenient_as_the_spec_asks() -> None:
    assert decode_gsm7(b"\x1b\x41") == "A"  # an unknown escape reads as the basic character
    assert decode_gsm7(b"ab\x1b") == "ab"  # a lone ESC at the end is dropped
    with pytest.raises(ValueError):
        decode_gsm7(b"\x80")


@given(st.text(st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION))))
def test_gsm7_round_trips(text: str) -> None:
    septets = encode_gsm7(text)
    assert len(septets) == segment(text).units
    assert decode_gsm7(septets) == text


# --- one part ----------------------------------------------------------------------------


def test_a_short_gsm7_text_is_one_part_without_a_header() -> None:
    assert short_messages("Your code is 1234", reference=7) == [
        MessagePart(0, DATA_CODING_GSM7, b"Your code is 1234")
    ]


def test_a_short_ucs2_text_is_one_part_in_utf16_be() -> None:
    assert short_messages("سلام 😀", reference=7) == [
        MessagePart(0, DATA_CODING_UCS2, "سلام 😀".encode("utf-16-be"))
    ]
    assert "😀".encode("utf-16-be") == b"\xd8\x3d\xde\x00"  # a surrogate pair


def test_a_full_single_part() -> None:
    [part] = short_messages("€" * 80, reference=0)  # 160 septets
    assert part.short_message == b"\x1b\x65" * 80


# --- several parts -------------------------------------------------------------------------


def test_a_three_part_gsm7_text() -> None:
    text = "a" * 153 + "b" * 153 + "c" * 10
    got = short_messages(text, reference=0x2A)
    assert got == [
        MessagePart(ESM_CLASS_UDHI, DATA_CODING_GSM7, b"\x05\x00\x03\x2a\x03\x01" + b"a" * 153),
        MessagePart(ESM_CLASS_UDHI, DATA_CODING_GSM7, b"\x05\x00\x03\x2a\x03\x02" + b"b" * 153),
        MessagePart(ESM_CLASS_UDHI, DATA_CODING_GSM7, b"\x05\x00\x03\x2a\x03\x03" + b"c" * 10),
    ]
    assert all(len(p.short_message) == 159 for p in got[:2])


def test_an_escape_pair_starts_the_next_part() -> None:
    got = short_messages("a" * 152 + "€" + "a" * 152, reference=1)  # 3 parts, as charged
    assert [p.short_message[6:] for p in got] == [
        b"a" * 152, b"\x1b\x65" + b"a" * 151, b"a"
    ]
    assert [p.short_message[:6] for p in got] == [bytes((5, 0, 3, 1, 3, seq)) for seq in (1, 2, 3)]


def test_a_two_part_ucs2_text() -> None:
    text = "ж" * 67 + "ш" * 4  # 71 code units: two parts
    got = short_messages(text, reference=0xFF)
    assert got == [
        MessagePart(ESM_CLASS_UDHI, DATA_CODING_UCS2,
                    b"\x05\x00\x03\xff\x02\x01" + ("ж" * 67).encode("utf-16-be")),
        MessagePart(ESM_CLASS_UDHI, DATA_CODING_UCS2,
                    b"\x05\x00\x03\xff\x02\x02" + ("ш" * 4).encode("utf-16-be")),
    ]
    assert len(got[0].short_message) == 6 + 134


def test_a_surrogate_pair_is_never_split() -> None:
    got = short_messages("ж" * 66 + "😀" + "ж" * 4, reference=3)
    assert [read_short_message(*p).text for p in got] == ["ж" * 66, "😀" + "ж" * 4]


@pytest.mark.parametrize("reference", [-1, 256])
def test_the_reference_is_one_octet(reference: int) -> None:
    with pytest.raises(ValueError):
        short_messages("hi", reference)


def test_a_reference_is_stable_per_key() -> None:
    assert reference_for("msg-1:+98912") == reference_for("msg-1:+98912")
    assert 0 <= reference_for("x") <= 255
    assert len({reference_for(f"m{i}") for i in range(1000)}) > 200


@settings(max_examples=300)
@given(texts, st.integers(0, 255))
def test_the_parts_sent_are_the_segments_charged(text: str, reference: int) -> None:
    sent = short_messages(text, reference)
    charged = segment(text)
    assert len(sent) == charged.segments
    coding = DATA_CODING_GSM7 if charged.encoding is Encoding.GSM7 else DATA_CODING_UCS2
    assert {p.data_coding for p in sent} == {coding}
    read = [read_short_message(*p) for p in sent]
    assert "".join(r.text for r in read) == text
    assert [r.text for r in read] == parts(text)
    if len(sent) == 1:
        assert sent[0].esm_class == 0
        assert read[0].concatenation is None
    else:
        assert [r.concatenation for r in read] == [
            Concatenation(reference, len(sent), seq) for seq in range(1, len(sent) + 1)
        ]
        assert all(len(p.short_message) <= 6 + 153 for p in sent)  # 140 octets on the air


# --- reading ------------------------------------------------------------------------------


def test_reading_a_16_bit_reference_and_other_elements() -> None:
    udh = bytes((9, 0x08, 4, 0x12, 0x34, 2, 1, 0x24, 1, 0x01))  # 16-bit concat + national table
    assert read_short_message(ESM_CLASS_UDHI, DATA_CODING_GSM7, udh + b"hi") == ReceivedPart(
        "hi", Concatenation(0x1234, 2, 1)
    )


def test_reading_other_codings() -> None:
    assert read_short_message(0, 1, b"plain").text == "plain"
    assert read_short_message(0, 3, "café".encode("latin-1")).text == "café"
    with pytest.raises(ValueError):
        read_short_message(0, 4, b"\x00\x01")


@pytest.mark.parametrize("message", [b"", b"\x07\x00\x03\x01", b"\x05\x00\x03\x01\x02"])
def test_a_header_longer_than_the_message_is_refused(message: bytes) -> None:
    with pytest.raises(ValueError):
        read_short_message(ESM_CLASS_UDHI, DATA_CODING_GSM7, message)
