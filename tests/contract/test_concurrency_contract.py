"""Concurrent units of work keep the invariants (on SQLite: BEGIN IMMEDIATE + busy timeout)."""

from __future__ import annotations

import asyncio

from contract_helpers import T0, at, charge, delivery, topup

from smsgw_core.errors import DuplicateTransaction, InsufficientBalance
from smsgw_core.ports import UnitOfWorkFactory


async def test_concurrent_debits_never_overdraw(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.ledger.apply(topup("seed", 1, 23 * 3))
        await uow.commit()

    async def debit(i: int) -> bool:
        try:
            async with uow_factory() as uow:
                # Read, then write: the lock upgrade that fails under deferred BEGIN.
                await uow.ledger.balance(1)
                await uow.ledger.apply(charge(f"c{i}", 1, 3))
                await uow.commit()
        except InsufficientBalance:
            return False
        return True

    outcomes = await asyncio.gather(*(debit(i) for i in range(50)))
    assert sum(outcomes) == 23
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) == 0
        assert len(await uow.ledger.transactions(1, 100, None)) == 24


async def test_a_transaction_id_raced_applies_once(uow_factory: UnitOfWorkFactory) -> None:
    async def credit() -> bool:
        try:
            async with uow_factory() as uow:
                await uow.ledger.apply(topup("same-key", 1, 10))
                await uow.commit()
        except DuplicateTransaction:
            return False
        return True

    assert sum(await asyncio.gather(*(credit() for _ in range(10)))) == 1
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) == 10


async def test_concurrent_relays_claim_disjoint_batches(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        for i in range(30):
            await uow.outbox.add(delivery(f"s{i}"), T0)
        await uow.commit()

    async def relay() -> list[str]:
        async with uow_factory() as uow:
            events = await uow.outbox.claim_due(at(1), 7, at(31))
            await uow.commit()
        return [e.aggregate_id for e in events]

    batches = await asyncio.gather(*(relay() for _ in range(6)))
    # A relay may come back short (an engine may lock more rows than it returns);
    # what matters is that no event goes to two relays and none is lost.
    claimed = [sms for batch in batches for sms in batch]
    async with uow_factory() as uow:
        claimed += [e.aggregate_id for e in await uow.outbox.claim_due(at(1), 30, at(31))]
    assert sorted(claimed) == sorted(f"s{i}" for i in range(30))
