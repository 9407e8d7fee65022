"""Keyset pagination: newest first, a cursor naming the last row seen.

The cursor is that row's position in decimal. Clients are to pass it back, not
read it; it is a plain integer so that an API document can state exactly
which cursors exist (an integer from 1 to MAX_POSITION), where any encoding
of it would leave strings the document calls valid and the server refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from smsgw_core.errors import InvalidCursor, InvalidRequest

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Row positions are BIGINT ids: a larger one is no row, and the database driver
# would fail on it rather than answer "none".
MAX_POSITION = 2**63 - 1
_POSITION = re.compile(r"[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    before: int | None = None  # row position (exclusive); None = from the newest

    @classmethod
    def parse(cls, limit: int | None, cursor: str | None) -> PageRequest:
        if limit is None:
            limit = DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequest("limit", f"must be between 1 and {MAX_LIMIT}")
        return cls(limit, decode_cursor(cursor) if cursor else None)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(position: int) -> str:
    return str(position)


def decode_cursor(cursor: str) -> int:
    # fullmatch before int(): no sign, spaces, underscores or leading zeros, and
    # at most 19 digits, so int() is never handed a huge string.
    if _POSITION.fullmatch(cursor) is None or int(cursor) > MAX_POSITION:
        raise InvalidCursor()
    return int(cursor)


def page_of(rows: list[tuple[int, T]], request: PageRequest) -> Page[T]:
    """`rows` holds up to limit + 1 (position, item) pairs, newest first."""
    items = rows[: request.limit]
    more = len(rows) > request.limit
    return Page([item for _, item in items], encode_cursor(items[-1][0]) if more else None)
