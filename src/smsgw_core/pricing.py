"""What a message costs: encoding, segments, and the tariff.

GSM-7 (3GPP TS 23.038) packs 160 septets in a single SMS and 153 per part of a
concatenated one; characters of the extension table take two septets (escape +
char) and the pair is never split across parts. Anything outside GSM-7 goes as
UCS-2: 70 UTF-16 code units single, 67 per part, surrogate pairs never split.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from smsgw_core.messages import MessageType

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


class Encoding(enum.Enum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True, slots=True)
class Segmentation:
    encoding: Encoding
    segments: int
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)


# (single-part capacity, per-part capacity) in the encoding's units
_CAPACITY = {Encoding.GSM7: (160, 153), Encoding.UCS2: (70, 67)}


def _unit_widths(text: str) -> tuple[Encoding, list[int]]:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        return Encoding.GSM7, [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return Encoding.UCS2, [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def segment(text: str) -> Segmentation:
    """Count the SMS parts `text` needs. An empty text still takes one part."""
    encoding, widths = _unit_widths(text)
    single, per_part = _CAPACITY[encoding]
    units = sum(widths)
    if units <= single:
        return Segmentation(encoding, 1, units)
    parts, used = 1, 0
    for width in widths:  # greedy fill: a two-unit character never straddles parts
        if used + width > per_part:
            parts, used = parts + 1, 0
        used += width
    return Segmentation(encoding, parts, units)


def parts(text: str) -> list[str]:
    """Split `text` into the parts `segment` counts, one string per SMS sent.

    The same greedy fill as `segment`, so an operator is handed exactly the segments
    the customer paid for, and a two-unit character (a GSM-7 escape pair, a UTF-16
    surrogate pair) never straddles two parts. A text that fits one SMS is one part.
    """
    encoding, widths = _unit_widths(text)
    single, per_part = _CAPACITY[encoding]
    if sum(widths) <= single:
        return [text]
    pieces: list[str] = []
    start, used = 0, 0
    for index, width in enumerate(widths):
        if used + width > per_part:
            pieces.append(text[start:index])
            start, used = index, 0
        used += width
    pieces.append(text[start:])
    return pieces


@dataclass(frozen=True, slots=True)
class Tariff:
    """Price of one segment to one recipient, per message type."""

    normal: int = 1
    express: int = 3

    def __post_init__(self) -> None:
        if self.normal < 0 or self.express < 0:
            raise ValueError("prices must not be negative")

    def price(self, message_type: MessageType) -> int:
        return self.express if message_type is MessageType.EXPRESS else self.normal


@dataclass(frozen=True, slots=True)
class Quote:
    segmentation: Segmentation
    recipients: int
    unit_price: int

    @property
    def segments(self) -> int:
        return self.segmentation.segments

    @property
    def cost(self) -> int:
        return self.segments * self.recipients * self.unit_price

    def share(self) -> int:
        """What one recipient's message costs: the amount refunded if it fails."""
        return self.segments * self.unit_price


def quote(
    text: str, recipients: Sequence[str], message_type: MessageType, tariff: Tariff
) -> Quote:
    """Price a request; `recipients` must already be distinct."""
    return Quote(segment(text), len(recipients), tariff.price(message_type))
