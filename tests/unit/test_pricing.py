"""Pricing: GSM-7 / UCS-2 detection, segment counting, the tariff and the quote."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw_core.messages import MAX_TEXT_LENGTH, MessageType
from smsgw_core.pricing import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Encoding,
    Tariff,
    parts,
    quote,
    segment,
)

# 3GPP TS 23.038 default alphabet, written out by code point (0x00-0x7F); ESC (0x1B) is None.
SPEC_BASIC_TABLE: list[str | None] = [
    *"@£$¥èéùìòÇ\nØø\rÅå",
    *"Δ_ΦΓΛΩΠΨΣΘΞ", None, *"ÆæßÉ",
    *" !\"#¤%&'()*+,-./",
    *"0123456789:;<=>?",
    *"¡ABCDEFGHIJKLMNO",
    *"PQRSTUVWXYZÄÖÑÜ§",
    *"¿abcdefghijklmno",
    *"pqrstuvwxyzäöñüà",
]
# The extension table: ESC followed by one of these.
SPEC_EXTENSION = "\f^{}\\[~]|€"

NON_GSM_BMP = "жшΨαçкالسلامیك中文ÿ"  # ç (small) and Greek small letters are not in GSM-7
ASTRAL = "😀🎉𝄞🚀👍🏽"


def test_the_alphabets_match_the_spec() -> None:
    assert len(SPEC_BASIC_TABLE) == 128
    assert frozenset(c for c in SPEC_BASIC_TABLE if c is not None) == GSM7_BASIC
    assert frozenset(SPEC_EXTENSION) == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


# --- encoding detection ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["hello", "Your code is 1234", "@£$¥ èé", "{braces} [and] ~tilde~ €5 | ^ \\", "ΔΦΓ", ""],
)
def test_gsm7_texts(text: str) -> None:
    assert segment(text).encoding is Encoding.GSM7


@pytest.mark.parametrize("text", ["سلام", "hello ж", "ça va", "emoji 😀", "中文", "`backtick`"])
def test_ucs2_texts(text: str) -> None:
    assert segment(text).encoding is Encoding.UCS2


def test_empty_text_still_takes_one_part() -> None:
    s = segment("")
    assert (s.encoding, s.segments, s.units) == (Encoding.GSM7, 1, 0)


# --- boundaries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4), (1530, 10),
     (1531, 11)],
)
def test_gsm7_boundaries(length: int, segments: int) -> None:
    s = segment("a" * length)
    assert (s.encoding, s.segments, s.units) == (Encoding.GSM7, segments, length)


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (670, 10), (671, 11)],
)
def test_ucs2_boundaries(length: int, segments: int) -> None:
    s = segment("ж" * length)
    assert (s.encoding, s.segments, s.units) == (Encoding.UCS2, segments, length)


@pytest.mark.parametrize("char", ["€", "{", "}", "[", "]", "~", "|", "^", "\\", "\f"])
def test_an_extension_char_takes_two_septets(char: str) -> None:
    assert segment(char).units == 2
    assert segment("a" * 158 + char).segments == 1  # 160 septets
    assert segment("a" * 159 + char).segments == 2  # 161 septets
    assert segment(char * 80).segments == 1
    assert segment(char * 81).segments == 2


def test_an_escape_pair_is_never_split_across_parts() -> None:
    # 152 + 2 + 152 = 306 septets = exactly two full parts if the pair could be split;
    # it cannot, so the € starts part 2 and the text needs three parts.
    text = "a" * 152 + "€" + "a" * 152
    assert segment(text).units == 306
    assert segment(text).segments == 3
    # the same length with the € where it fits stays at two parts
    assert segment("a" * 151 + "€" + "a" * 153).segments == 2
    # and 152 'a' + '€' + more: part 1 holds only the 152 'a'
    assert segment("a" * 152 + "€" + "a" * 7).segments == 2
    assert segment("a" * 152 + "€" + "a" * 151).segments == 2
    assert segment("a" * 152 + "€" + "a" * 152).segments == 3


def test_a_surrogate_pair_is_never_split_across_parts() -> None:
    assert segment("😀").units == 2
    assert segment("ж" * 68 + "😀").segments == 1  # 70 code units
    assert segment("ж" * 69 + "😀").segments == 2  # 71 code units
    text = "ж" * 66 + "😀" + "ж" * 66  # 134 code units: two parts only if the pair splits
    assert segment(text).units == 134
    assert segment(text).segments == 3
    assert segment("ж" * 65 + "😀" + "ж" * 67).segments == 2


def test_gsm_extension_chars_count_one_unit_in_ucs2() -> None:
    s = segment("€{}ж")
    assert (s.encoding, s.units) == (Encoding.UCS2, 4)


# --- quote and tariff -----------------------------------------------------------------


def test_the_longest_text_prices_every_segment() -> None:
    # The limit is MAX_TEXT_LENGTH characters (checked by SendSmsService), not
    # a segment count: the worst such text, all outside the BMP, is 49 parts.
    assert quote("a" * MAX_TEXT_LENGTH, ["1234567"], MessageType.NORMAL, Tariff()).segments == 11
    worst = quote("😀" * MAX_TEXT_LENGTH, ["1234567"], MessageType.EXPRESS, Tariff())
    assert (worst.segments, worst.cost) == (49, 49 * 3)


def test_default_tariff() -> None:
    tariff = Tariff()
    assert tariff.price(MessageType.NORMAL) == 1
    assert tariff.price(MessageType.EXPRESS) == 3


def test_negative_prices_are_refused() -> None:
    with pytest.raises(ValueError):
        Tariff(normal=-1)
    with pytest.raises(ValueError):
        Tariff(express=-1)


def test_cost_is_segments_times_recipients_times_price() -> None:
    recipients = ["09128582812", "091285284834", "+989121234567"]
    q = quote("a" * 200, recipients, MessageType.EXPRESS, Tariff(normal=2, express=5))
    assert (q.segments, q.recipients, q.unit_price) == (2, 3, 5)
    assert q.cost == 2 * 3 * 5
    assert q.share() == 2 * 5
    q = quote("hi", recipients, MessageType.NORMAL, Tariff())
    assert q.cost == 3
    assert q.share() == 1


@settings(max_examples=100)
@given(
    text=st.text(min_size=1, max_size=400),
    recipients=st.integers(1, 1000),
    normal=st.integers(0, 50),
    express=st.integers(0, 50),
    message_type=st.sampled_from(MessageType),
)
def test_quote_property(
    text: str, recipients: int, normal: int, express: int, message_type: MessageType
) -> None:
    numbers = [f"+98912{i:07d}" for i in range(recipients)]
    tariff = Tariff(normal, express)
    seg = segment(text)
    q = quote(text, numbers, message_type, tariff)
    price = express if message_type is MessageType.EXPRESS else normal
    assert q.cost == seg.segments * recipients * price
    assert q.share() * recipients == q.cost


# --- property: against a reference built part by part ---------------------------------


def reference_parts(text: str) -> tuple[Encoding, list[list[str]], int]:
    """Encode to real units, then fill parts unit-group by unit-group (never split one)."""
    if all(c in SPEC_EXTENSION or c in SPEC_BASIC_TABLE for c in text):
        encoding = Encoding.GSM7
        groups = [["ESC", c] if c in SPEC_EXTENSION else [c] for c in text]
        single, per_part = 160, 153
    else:
        encoding = Encoding.UCS2
        groups = []
        for c in text:
            raw = c.encode("utf-16-le")
            groups.append([raw[i : i + 2].hex() for i in range(0, len(raw), 2)])
        single, per_part = 70, 67
    units = sum(len(g) for g in groups)
    if units <= single:
        return encoding, [[u for g in groups for u in g]], units
    parts: list[list[str]] = [[]]
    for group in groups:
        if len(parts[-1]) + len(group) > per_part:
            parts.append([])
        parts[-1].extend(group)
    assert all(len(p) <= per_part for p in parts)
    return encoding, parts, units


gsm_basic = st.sampled_from(sorted(GSM7_BASIC))
gsm_extension = st.sampled_from(sorted(GSM7_EXTENSION))
non_gsm = st.one_of(
    st.sampled_from(NON_GSM_BMP),
    st.sampled_from(ASTRAL),
    st.characters(min_codepoint=0x10000, max_codepoint=0x1FAFF),
    st.characters(codec="utf-8").filter(  # utf-8: no lone surrogates
        lambda c: c not in GSM7_BASIC and c not in GSM7_EXTENSION
    ),
)
gsm_char = st.one_of(gsm_basic, gsm_extension)
any_char = st.one_of(gsm_basic, gsm_extension, non_gsm)


def runs(chars: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Long texts cheaply: a few runs of one character repeated, near the boundaries."""
    return st.lists(st.tuples(chars, st.integers(1, 170)), max_size=12).map(
        lambda rs: "".join(c * n for c, n in rs)
    )


texts = st.one_of(
    st.text(gsm_char, max_size=400),
    st.text(any_char, max_size=200),
    runs(gsm_char),
    runs(any_char),
    st.tuples(runs(gsm_char), st.text(any_char, max_size=5)).map("".join),
)


@settings(max_examples=400)
@given(texts)
def test_segment_matches_reference(text: str) -> None:
    encoding, parts, units = reference_parts(text)
    got = segment(text)
    assert got.encoding is encoding
    assert got.units == units
    assert got.segments == len(parts)


# --- the parts sent are the segments charged -------------------------------------------


@settings(max_examples=400)
@given(texts)
def test_parts_are_exactly_the_segments_charged(text: str) -> None:
    pieces = parts(text)
    assert len(pieces) == segment(text).segments
    assert "".join(pieces) == text
    encoding, reference, _ = reference_parts(text)
    # Each part holds the units the reference puts there: none split, none moved.
    assert [units_in(p, encoding) for p in pieces] == [len(r) for r in reference]


def units_in(piece: str, encoding: Encoding) -> int:
    """A part's size in its whole text's units (a part alone may look GSM-7)."""
    if encoding is Encoding.UCS2:
        return len(piece.encode("utf-16-le")) // 2
    return sum(2 if c in SPEC_EXTENSION else 1 for c in piece)


@given(st.text())
def test_parts_of_any_text(text: str) -> None:
    pieces = parts(text)
    assert len(pieces) == segment(text).segments
    assert "".join(pieces) == text


def test_parts_at_the_boundaries() -> None:
    assert parts("") == [""]
    assert parts("a" * 160) == ["a" * 160]
    assert parts("a" * 161) == ["a" * 153, "a" * 8]
    assert parts("a" * 152 + "€" + "a" * 152) == ["a" * 152, "€" + "a" * 151, "a"]
    assert parts("ж" * 66 + "😀" + "ж" * 66) == ["ж" * 66, "😀" + "ж" * 65, "ж"]
