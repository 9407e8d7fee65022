"""Page requests and their cursors.

On the in-memory fakes (tests/unit/core_world.py); assertions are on state.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw_core.errors import (
    InvalidCursor,
    InvalidRequest,
)
from smsgw_core.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PageRequest,
    decode_cursor,
    encode_cursor,
)

# --- pagination -----------------------------------------------------------------------


def test_page_request_defaults_and_limits() -> None:
    assert PageRequest.parse(None, None) == PageRequest(DEFAULT_LIMIT, None)
    assert PageRequest.parse(1, None).limit == 1
    assert PageRequest.parse(MAX_LIMIT, None).limit == MAX_LIMIT
    for bad in (0, -1, MAX_LIMIT + 1):
        with pytest.raises(InvalidRequest) as err:
            PageRequest.parse(bad, None)
        assert err.value.field == "limit"


@pytest.mark.parametrize(
    "cursor",
    ["garbage!", "%%%", "YWJj", encode_cursor(0), encode_cursor(-4), "cA", "p12",
     encode_cursor(2**63), encode_cursor(10**19 - 1),  # past BIGINT: no row has it
     "+5", "1_0", " 7", "7 ", "07", "٣", "cDEy"],  # cDEy: an old base64 cursor
)
def test_bad_cursors_name_the_cursor_field(cursor: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        PageRequest.parse(10, cursor)
    assert isinstance(err.value, InvalidCursor)
    assert err.value.field == "cursor"


@settings(max_examples=100)
@given(st.integers(1, 2**63 - 1))  # row ids are BIGINT
def test_cursor_round_trip(position: int) -> None:
    cursor = encode_cursor(position)
    assert decode_cursor(cursor) == position
    assert PageRequest.parse(10, cursor).before == position
