"""A message's text as submit_sm short messages, and back.

GSM-7 goes as data_coding 0 ("SMSC default alphabet"), one septet per octet
(SMPP carries it unpacked; the SMSC packs it for the air), a character of the
extension table as ESC (0x1B) then its code. Anything else goes as UCS-2,
data_coding 8, in UTF-16-BE: a character outside the BMP is a surrogate pair.

A text the pricing module counts as one segment is one short_message with no
header. A longer one is split by `smsgw_core.pricing.parts` — the very parts
the customer was charged for — each behind a User Data Header carrying the
8-bit concatenation element (05 00 03 ref total seq) with esm_class's UDHI
bit set: 6 octets + 153 septets, or 6 + 134 octets (67 UTF-16 code units).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import NamedTuple

from smsgw_core.pricing import Encoding, parts, segment

DATA_CODING_GSM7 = 0x00
DATA_CODING_IA5 = 0x01
DATA_CODING_LATIN1 = 0x03
DATA_CODING_UCS2 = 0x08
ESM_CLASS_UDHI = 0x40
ESC = 0x1B

# 3GPP TS 23.038 default alphabet by code 0x00-0x7F; ESC (0x1B) stands in its own place.
GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: ESC followed by the code.
GSM7_EXTENSION_TABLE = {
    "\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}

_GSM7_ENCODE = {
    **{char: bytes([code]) for code, char in enumerate(GSM7_BASIC_TABLE) if code != ESC},
    **{char: bytes([ESC, code]) for char, code in GSM7_EXTENSION_TABLE.items()},
}
_GSM7_DECODE_EXTENSION = {code: char for char, code in GSM7_EXTENSION_TABLE.items()}


def encode_gsm7(text: str) -> bytes:
    """Unpacked septets; ValueError for a character outside GSM-7 and its extension."""
    try:
        return b"".join([_GSM7_ENCODE[char] for char in text])
    except KeyError as missing:
        raise ValueError(f"{missing.args[0]!r} is not in the GSM-7 alphabet") from None


def decode_gsm7(septets: bytes) -> str:
    """Unpacked septets to text. An escape the extension table lacks reads as the basic
    character (TS 23.038's rule for a receiver); a trailing lone ESC is dropped."""
    out: list[str] = []
    escaped = False
    for code in septets:
        if code > 0x7F:
            raise ValueError(f"0x{code:02X} is not a septet")
        if escaped:
            out.append(_GSM7_DECODE_EXTENSION.get(code, GSM7_BASIC_TABLE[code]))
            escaped = False
        elif code == ESC:
            escaped = True
        else:
            out.append(GSM7_BASIC_TABLE[code])
    return "".join(out)


def encode_ucs2(text: str) -> bytes:
    """UTF-16-BE: a character outside the BMP is a surrogate pair (two code units)."""
    return text.encode("utf-16-be")


class MessagePart(NamedTuple):
    """One submit_sm's share of a message."""

    esm_class: int
    data_coding: int
    short_message: bytes


def reference_for(key: str) -> int:
    """A concatenation reference (0-255) drawn from a stable key, so a resend of the same
    message carries the same reference and a handset joins its parts either way."""
    return zlib.crc32(key.encode()) & 0xFF


def short_messages(text: str, reference: int) -> list[MessagePart]:
    """The submit_sm payloads of `text`: one per segment charged, in order."""
    if not 0 <= reference <= 0xFF:
        raise ValueError(f"a concatenation reference is one octet, not {reference}")
    gsm7 = segment(text).encoding is Encoding.GSM7
    encode, data_coding = (
        (encode_gsm7, DATA_CODING_GSM7) if gsm7 else (encode_ucs2, DATA_CODING_UCS2)
    )
    pieces = parts(text)
    if len(pieces) == 1:
        return [MessagePart(0, data_coding, encode(text))]
    total = len(pieces)
    if total > 0xFF:
        raise ValueError(f"{total} parts: a concatenated message has at most 255")
    return [
        MessagePart(ESM_CLASS_UDHI, data_coding,
                    bytes((5, 0, 3, reference, total, seq)) + encode(piece))
        for seq, piece in enumerate(pieces, start=1)
    ]


# --- reading a short message (the simulator, MO messages, tests) ----------------------


@dataclass(frozen=True, slots=True)
class Concatenation:
    reference: int
    total: int
    seq: int  # 1-based


@dataclass(frozen=True, slots=True)
class ReceivedPart:
    text: str
    concatenation: Concatenation | None  # None: the message is whole


def read_short_message(esm_class: int, data_coding: int, short_message: bytes) -> ReceivedPart:
    """A short_message back to its text and, behind a UDH, its place in a concatenation.

    data_coding 0 is read as GSM-7, 1 as ASCII, 3 as Latin-1, 8 as UTF-16-BE; any other,
    or a UDH longer than the message, raises ValueError.
    """
    body, concatenation = short_message, None
    if esm_class & ESM_CLASS_UDHI:
        if not short_message or short_message[0] + 1 > len(short_message):
            raise ValueError("the user data header is longer than the message")
        header_end = short_message[0] + 1
        concatenation = _concatenation(short_message[1:header_end])
        body = short_message[header_end:]
    return ReceivedPart(_decode(data_coding, body), concatenation)


def _concatenation(header: bytes) -> Concatenation | None:
    found = None
    index = 0
    while index + 2 <= len(header):
        element, length = header[index], header[index + 1]
        value = header[index + 2 : index + 2 + length]
        if element == 0x00 and length == 3 and len(value) == 3:
            found = Concatenation(value[0], value[1], value[2])
        elif element == 0x08 and length == 4 and len(value) == 4:  # 16-bit reference
            found = Concatenation(int.from_bytes(value[:2], "big"), value[2], value[3])
        index += 2 + length
    return found


def _decode(data_coding: int, body: bytes) -> str:
    if data_coding == DATA_CODING_GSM7:
        return decode_gsm7(body)
    if data_coding == DATA_CODING_IA5:
        return body.decode("ascii")
    if data_coding == DATA_CODING_LATIN1:
        return body.decode("latin-1")
    if data_coding == DATA_CODING_UCS2:
        return body.decode("utf-16-be")
    raise ValueError(f"data_coding 0x{data_coding:02X} is not a text this codec reads")
