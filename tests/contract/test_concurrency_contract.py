"""Concurrent units of work keep the invariants (on SQLite: BEGIN IMMEDIATE + busy timeout)."""

from __future__ import annotations

import asyncio
import random

import pytest
from contract_helpers import T0, at, charge, delivery, topup

from smsgw_core.errors import DuplicateTransaction, InsufficientBalance
from smsgw_core.ledger import TransactionType, refund_id
from smsgw_core.messages import MessageType
from smsgw_core.operators import ErrorClass
from smsgw_core.ports import UnitOfWorkFactory
from smsgw_core.pricing import Tariff
from smsgw_core.services.deliver import Deliverer
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.send_sms import SendSms, SmsSender
from smsgw_core.testing import (
    CountingCircuitBreaker,
    FakeClock,
    RecordingBus,
    ScriptedOperator,
    SequentialIds,
    always,
)


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

    outcomes = await asyncio.gather(*(debit(i) for i in range(200)))
    assert sum(outcomes) == 23
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) == 0
        assert len(await uow.ledger.transactions(1, 1000, None)) == 24


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
            await uow.outbox.add([delivery(f"s{i}")], T0)
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


async def test_two_relays_at_once_publish_each_event_once(uow_factory: UnitOfWorkFactory) -> None:
    clock = FakeClock(T0)
    async with uow_factory() as uow:
        for i in range(120):
            kind = MessageType.EXPRESS if i % 3 == 0 else MessageType.NORMAL
            await uow.outbox.add([delivery(f"s{i}", type=kind)], T0)
        await uow.commit()
    bus = RecordingBus()
    relays = [OutboxRelay(uow_factory, bus, clock, batch_size=7) for _ in range(2)]

    async def drain(relay: OutboxRelay) -> None:
        published = True
        while published:
            published = bool((await relay.relay_once()).published)
            await asyncio.sleep(0)  # let the other relay interleave

    await asyncio.gather(*(drain(r) for r in relays))
    published = [d.sms_identifier for d in bus.published]
    assert len(published) == len(set(published)) == 120


async def test_a_failed_recipient_delivered_twice_at_once_is_refunded_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    clock = FakeClock(T0)
    async with uow_factory() as uow:
        await uow.ledger.apply(topup("seed", 1, 10))
        await uow.commit()
    sender = SmsSender(uow_factory, clock, SequentialIds(), Tariff())
    await sender.send(SendSms(1, "hi", ("+989120000001", "+989120000002")))
    bus = RecordingBus()
    await OutboxRelay(uow_factory, bus, clock).relay_once()
    [sent] = bus.published
    down = ScriptedOperator("A", always(ErrorClass.PERMANENT))
    deliverers = [
        Deliverer(uow_factory, clock, [down], CountingCircuitBreaker(clock)) for _ in range(2)
    ]
    await asyncio.gather(*(d.deliver(sent) for d in deliverers))
    await deliverers[0].deliver(sent)  # and once more, late
    async with uow_factory() as uow:
        refunds = [t for _, t in await uow.ledger.transactions(1, 100, None)
                   if t.type is TransactionType.REFUND]
        assert await uow.ledger.balance(1) == 10
    assert sorted(t.transaction_id for t in refunds) == [
        refund_id(sent.sms_identifier, r) for r in sorted(sent.recipients)
    ]


async def test_concurrent_batches_never_overdraw(uow_factory: UnitOfWorkFactory) -> None:
    # Batches over overlapping accounts, as concurrent groups of sends take them:
    # each locks its accounts in user order, so they neither deadlock nor overdraw.
    async with uow_factory() as uow:
        for user in (1, 2, 3):
            await uow.ledger.apply(topup(f"seed-{user}", user, 30))
        await uow.commit()

    async def batch(i: int) -> int:
        charges = [charge(f"b{i}-{k}", user, 1 + (i + k) % 3)
                   for k, user in enumerate((3, 1, 2, 1))]
        async with uow_factory() as uow:
            refused = await uow.ledger.debit_many(charges)
            if not refused:
                await uow.commit()
        return len(charges) - len(refused) if not refused else 0

    applied = sum(await asyncio.gather(*(batch(i) for i in range(40))))
    async with uow_factory() as uow:
        balances = [await uow.ledger.balance(user) for user in (1, 2, 3)]
        rows = [t for user in (1, 2, 3) for _, t in await uow.ledger.transactions(user, 500, None)]
    assert all(b is not None and b >= 0 for b in balances)
    charges = [t for t in rows if t.type is TransactionType.CHARGE]
    assert len(charges) == applied > 0
    assert sum(balances) == 90 + sum(t.amount for t in charges)  # type: ignore[arg-type]


@pytest.mark.parametrize("uow_factory", ["sqlite", "mariadb"], indirect=True)  # about locks
async def test_concurrent_batches_over_many_accounts_do_not_deadlock(
    uow_factory: UnitOfWorkFactory,
) -> None:
    # Neighbouring accounts in different groups: a balance statement that locked
    # beyond its own rows (an upsert's next-key locks) deadlocked here.
    users = range(1, 401)
    async with uow_factory() as uow:
        for user in users:
            await uow.ledger.apply(topup(f"seed-{user}", user, 100))
        await uow.commit()
    rng = random.Random(7)
    groups = [rng.sample(users, 40) for _ in range(80)]

    async def batch(i: int, group: list[int]) -> None:
        async with uow_factory() as uow:
            assert await uow.ledger.debit_many(
                [charge(f"g{i}-{k}", user, 1) for k, user in enumerate(group)]
            ) == []
            await uow.commit()

    await asyncio.gather(*(batch(i, g) for i, g in enumerate(groups)))
    async with uow_factory() as uow:
        total = sum([await uow.ledger.balance(user) or 0 for user in users])
    assert total == 400 * 100 - 80 * 40
