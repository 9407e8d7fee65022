"""The message history: newest first, filtered, validated.

On the in-memory fakes (tests/unit/core_world.py); assertions are on state.
"""

from __future__ import annotations

import pytest
from core_world import (
    N1,
    N2,
    N3,
    U,
    World,
    fund,
    send,
)

from smsgw_core.errors import (
    InvalidRequest,
)
from smsgw_core.messages import SmsStatus
from smsgw_core.operators import ErrorClass
from smsgw_core.pagination import (
    PageRequest,
)
from smsgw_core.ports import HistoryFilter

# --- history --------------------------------------------------------------------------


async def test_history_pages_newest_first_with_filters(world: World) -> None:
    await fund(world)
    await fund(world, user=2)
    first = await send(world, (N1, N2))
    second = await send(world, (N1, N2, N3))
    await send(world, (N1,), user=2)

    everything: list[tuple[str, str]] = []
    cursor: str | None = None
    while True:
        page = await world.history.query(HistoryFilter(U), PageRequest.parse(2, cursor))
        assert len(page.items) <= 2
        everything += [(m.sms_identifier, m.recipient) for m in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    s1, s2 = first.sms_identifier, second.sms_identifier
    assert everything == [(s2, N3), (s2, N2), (s2, N1), (s1, N2), (s1, N1)]

    page = await world.history.query(HistoryFilter(U, sms_identifier=s1), PageRequest())
    assert [m.recipient for m in page.items] == [N2, N1]
    assert page.next_cursor is None

    world.a.behaviour = lambda sms: ErrorClass.PERMANENT if sms.recipient == N3 else "id"
    await world.relay_and_deliver()
    failed = await world.history.query(HistoryFilter(U, status=SmsStatus.FAILED), PageRequest())
    assert [(m.sms_identifier, m.recipient) for m in failed.items] == [(s2, N3)]
    done = await world.history.query(
        HistoryFilter(U, status=SmsStatus.parse("done")), PageRequest()
    )
    assert len(done.items) == 4
    assert all(m.provider == "A" for m in done.items)


async def test_history_validation(world: World) -> None:
    with pytest.raises(InvalidRequest) as err:
        await world.history.query(HistoryFilter(0), PageRequest())
    assert err.value.field == "user_id"
    page = await world.history.query(HistoryFilter(U), PageRequest())
    assert (page.items, page.next_cursor) == ([], None)
