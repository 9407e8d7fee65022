"""Accounts: top-ups, their idempotency, and the balance view.

On the in-memory fakes (tests/unit/core_world.py); assertions are on state.
"""

from __future__ import annotations

import pytest
from core_world import (
    N1,
    N2,
    U,
    World,
    send,
    writes_nothing,
)

from smsgw_core.errors import (
    DuplicateTransaction,
    InvalidRequest,
    UnknownAccount,
)
from smsgw_core.ledger import TransactionType, topup_id
from smsgw_core.pagination import (
    PageRequest,
)
from smsgw_core.services.accounts import TopUp

# --- accounts -------------------------------------------------------------------------


async def test_top_up_creates_the_account_and_returns_the_balance(world: World) -> None:
    assert await world.accounts.top_up(TopUp(U, 50, "first")) == 50
    assert await world.accounts.top_up(TopUp(U, 25)) == 75
    txs = world.transactions(U)
    assert [(t.type, t.amount) for t in txs] == [(TransactionType.TOPUP, 50),
                                                 (TransactionType.TOPUP, 25)]
    assert txs[0].description == "first"
    assert len({t.transaction_id for t in txs}) == 2


async def test_top_up_with_an_idempotency_key_applies_once(world: World) -> None:
    assert await world.accounts.top_up(TopUp(U, 50, idempotency_key="pay-1")) == 50
    assert await world.accounts.top_up(TopUp(U, 50, idempotency_key="pay-1")) == 50
    assert await world.accounts.top_up(TopUp(U, 50, idempotency_key="pay-2")) == 100
    ids = [t.transaction_id for t in world.transactions(U)]
    assert ids == [topup_id(U, "pay-1"), topup_id(U, "pay-2")]
    # the same key for another customer is another top-up
    assert await world.accounts.top_up(TopUp(2, 7, idempotency_key="pay-1")) == 7


async def test_a_keyed_top_up_replayed_after_spending_answers_as_the_first_did(
    world: World,
) -> None:
    await world.accounts.top_up(TopUp(U, 10, idempotency_key="pay-1"))
    await send(world, (N1, N2))
    with writes_nothing(world):
        assert await world.accounts.top_up(TopUp(U, 10, idempotency_key="pay-1")) == 10


async def test_ledger_refuses_a_transaction_id_twice(world: World) -> None:
    await world.accounts.top_up(TopUp(U, 10, idempotency_key="k"))
    tx = world.transactions(U)[0]
    with writes_nothing(world), pytest.raises(DuplicateTransaction):
        async with world.db.uow() as uow:
            await uow.ledger.apply(tx)
            await uow.commit()


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (TopUp(0, 10), "user_id"),
        (TopUp(-1, 10), "user_id"),
        (TopUp(U, 0), "balance"),
        (TopUp(U, -5), "balance"),
        (TopUp(U, 5, "d" * 256), "description"),
    ],
)
async def test_invalid_top_ups(world: World, command: TopUp, field: str) -> None:
    with writes_nothing(world), pytest.raises(InvalidRequest) as err:
        await world.accounts.top_up(command)
    assert err.value.field == field


async def test_view_unknown_account(world: World) -> None:
    with pytest.raises(UnknownAccount):
        await world.accounts.view(U, PageRequest())
    with pytest.raises(InvalidRequest) as err:
        await world.accounts.view(0, PageRequest())
    assert err.value.field == "user_id"


async def test_balance_view_pages_newest_first(world: World) -> None:
    for amount in range(1, 6):
        await world.accounts.top_up(TopUp(U, amount))
    await world.accounts.top_up(TopUp(2, 100))  # another customer's rows never show
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        view = await world.accounts.view(U, PageRequest.parse(2, cursor))
        assert view.balance == 15
        assert len(view.transactions.items) <= 2
        seen += [t.amount for t in view.transactions.items]
        pages += 1
        cursor = view.transactions.next_cursor
        if cursor is None:
            break
    assert seen == [5, 4, 3, 2, 1]
    assert pages == 3
    whole = await world.accounts.view(U, PageRequest.parse(5, None))
    assert whole.transactions.next_cursor is None  # exactly `limit` rows: no further page
