"""Concurrent sends and deliveries share transactions; each is answered as if alone."""

from __future__ import annotations

import asyncio

import pytest
from core_world import World, fund

from smsgw_core.errors import InsufficientBalance, InvalidRequest
from smsgw_core.ledger import TransactionType
from smsgw_core.messages import MessageType
from smsgw_core.operators import ErrorClass, OutgoingSms
from smsgw_core.services.deliver import Deliverer, DeliveryCounts
from smsgw_core.services.group_commit import GroupCommit
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.send_sms import Accepted, SendSms, SmsSender
from smsgw_core.telemetry import RecordingTelemetry
from smsgw_core.testing import (
    CountingCircuitBreaker,
    FakeClock,
    InMemoryDatabase,
    RecordingBus,
    ScriptedOperator,
)


async def _world(balance: int) -> tuple[InMemoryDatabase, SmsSender, RecordingTelemetry]:
    """The core on fakes with customer 1 holding `balance` and customer 2 holding 100."""
    world = World()
    await fund(world, balance, user=1)
    await fund(world, 100, user=2)
    return world.db, world.sender, world.telemetry


async def test_send_many_answers_each_command_and_writes_only_the_accepted() -> None:
    db, sender, seen = await _world(balance=5)
    commits = db.commits
    answers = await sender.send_many([
        SendSms(1, "hi", ("09120000001", "09120000002")),  # 2
        SendSms(1, "", ("09120000003",)),  # bad request
        SendSms(1, "hi", ("09120000004",), MessageType.EXPRESS),  # 3: 5 used
        SendSms(1, "hi", ("09120000005",)),  # 1 more than the balance
        SendSms(2, "hi", ("not a number",)),  # bad request
        SendSms(2, "hi", ("09120000006",)),
    ])
    assert [type(a) for a in answers] == [
        Accepted, InvalidRequest, Accepted, InsufficientBalance, InvalidRequest, Accepted,
    ]
    assert db.commits == commits + 1  # one transaction for all (after one rolled-back try)
    state = db.state
    assert state.balances == {1: 0, 2: 99}
    accepted = {a.sms_identifier for a in answers if isinstance(a, Accepted)}
    assert {m.sms_identifier for _, m in state.messages} == accepted
    assert {row.event.aggregate_id for row in state.outbox.values()} == accepted
    assert [m for m in seen.ledger_moves if m[0] is TransactionType.CHARGE] == [
        (TransactionType.CHARGE, 2, 1), (TransactionType.CHARGE, 3, 1),
        (TransactionType.CHARGE, 1, 1),
    ]


async def test_send_many_takes_no_idempotency_key() -> None:
    _, sender, _ = await _world(balance=5)
    with pytest.raises(ValueError, match="Idempotency-Key"):
        await sender.send_many([SendSms(1, "hi", ("09120000001",), idempotency_key="k")])


async def test_concurrent_sends_share_transactions() -> None:
    db, sender, _ = await _world(balance=1_000)
    coalescing = GroupCommit(sender, max_group=10, max_in_flight=2)
    commits = db.commits
    answers = await asyncio.gather(
        *(coalescing.send(SendSms(1, "hi", (f"0912{i:07d}",))) for i in range(100)),
        return_exceptions=True,
    )
    assert all(isinstance(a, Accepted) for a in answers)
    assert len({a.sms_identifier for a in answers if isinstance(a, Accepted)}) == 100
    assert db.commits - commits == 12  # two alone (both slots free), then ten groups of ten
    assert db.state.balances[1] == 900


async def test_a_refused_send_does_not_fail_its_group() -> None:
    db, sender, _ = await _world(balance=3)
    coalescing = GroupCommit(sender, max_in_flight=1)
    answers = await asyncio.gather(
        *(coalescing.send(SendSms(1, "hi", (f"0912{i:07d}",))) for i in range(5)),
        return_exceptions=True,
    )
    assert sum(isinstance(a, Accepted) for a in answers) == 3
    assert sum(isinstance(a, InsufficientBalance) for a in answers) == 2
    assert db.state.balances[1] == 0


async def test_a_database_failure_fails_every_send_of_the_group() -> None:
    _, sender, _ = await _world(balance=10)

    def broken() -> None:
        raise ConnectionError("database away")

    sender.uow = broken  # type: ignore[assignment,method-assign]
    coalescing = GroupCommit(sender)
    answers = await asyncio.gather(
        *(coalescing.send(SendSms(1, "hi", (f"0912{i:07d}",))) for i in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(a, ConnectionError) for a in answers)


async def test_a_send_whose_caller_went_away_leaves_the_others_answered() -> None:
    db, sender, _ = await _world(balance=10)
    coalescing = GroupCommit(sender, max_in_flight=1)
    first = asyncio.create_task(coalescing.send(SendSms(1, "hi", ("09120000001",))))
    await asyncio.sleep(0)
    gone = asyncio.create_task(coalescing.send(SendSms(1, "hi", ("09120000002",))))
    kept = asyncio.create_task(coalescing.send(SendSms(1, "hi", ("09120000003",))))
    await asyncio.sleep(0)
    gone.cancel()
    assert isinstance(await first, Accepted) and isinstance(await kept, Accepted)
    # The departed send was committed with its group, as any request whose answer
    # is lost on the way; an Idempotency-Key is how a client makes that safe.
    assert db.state.balances[1] == 7


async def test_a_send_with_an_idempotency_key_goes_alone_and_replays() -> None:
    db, sender, _ = await _world(balance=10)
    coalescing = GroupCommit(sender)
    command = SendSms(1, "hi", ("09120000001",), idempotency_key="k-1")
    first, again = await asyncio.gather(coalescing.send(command), coalescing.send(command))
    assert first == again
    assert db.state.balances[1] == 9


async def test_concurrent_deliveries_share_their_claims_and_outcomes() -> None:
    db, sender, _ = await _world(balance=1_000)
    clock = FakeClock()
    for i in range(20):
        await sender.send(SendSms(1, "hi", (f"0912{i:07d}", f"0913{i:07d}")))
    bus = RecordingBus()
    await OutboxRelay(db.uow, bus, clock, batch_size=100).relay_once()
    calls: list[str] = []

    def answer(sms: OutgoingSms) -> str | ErrorClass:
        calls.append(sms.reference)
        return ErrorClass.PERMANENT if sms.recipient.startswith("0913") else "ok"

    deliverer = Deliverer(db.uow, clock, [ScriptedOperator("A", answer)],
                          CountingCircuitBreaker(clock))
    commits = db.commits
    twice = [*bus.published, bus.published[-1]]  # the bus hands one over twice at once
    reports = await asyncio.gather(*(deliverer.deliver(d) for d in twice))
    # Without groups: 42 (a claim and an outcome each); with: two alone while both
    # slots are free, then the rest together, for the claims and for the outcomes.
    assert db.commits - commits <= 8
    assert len(calls) == len(set(calls)) == 40  # the duplicate found nothing to claim
    assert sum(r.done for r in reports) == 20 and sum(r.failed for r in reports) == 20
    assert reports[-1] == DeliveryCounts(0, 0, 2)
    refunds = [t for _, t in db.state.transactions if t.type is TransactionType.REFUND]
    assert len({t.transaction_id for t in refunds}) == len(refunds) == 20
    assert db.state.balances[1] == 1_000 - 40 + 20
