"""Transactions the database gave up (deadlock, lock wait timeout, busy) run again, bounded."""

from __future__ import annotations

from dataclasses import replace

import pytest
from core_world import World

from smsgw_core.backoff import Backoff
from smsgw_core.errors import StorageUnavailable, TransientConflict
from smsgw_core.ledger import Transaction, TransactionType
from smsgw_core.ports import UnitOfWork
from smsgw_core.services.accounts import TopUp
from smsgw_core.services.send_sms import SendSms
from smsgw_core.testing import FakeClock
from smsgw_core.transactions import CONFLICTS, ConflictRetry, in_transaction, retry_conflicts


class Pauses:
    def __init__(self) -> None:
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)


def topup(tx_id: str, customer_id: int, amount: int) -> Transaction:
    return Transaction(tx_id, customer_id, amount, TransactionType.TOPUP, "", FakeClock().now())


def conflicts(n: int) -> list[Exception]:
    return [TransientConflict(f"deadlock {i}") for i in range(n)]


async def test_a_conflict_is_retried_after_a_jittered_growing_pause() -> None:
    pauses = Pauses()
    retry = ConflictRetry(Backoff(first=0.01, ceiling=0.03, jitter=1.0, attempts=5,
                                  random=lambda: 1.0), sleep=pauses)
    failures = conflicts(3)

    async def attempt() -> str:
        if failures:
            raise failures.pop()
        return "done"

    assert await retry_conflicts(attempt, retry) == "done"
    assert pauses.taken == [0.01, 0.02, 0.03]  # doubling, capped


async def test_the_last_conflict_propagates_after_the_attempts() -> None:
    pauses = Pauses()
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise TransientConflict("deadlock")

    with pytest.raises(TransientConflict):
        await retry_conflicts(attempt, ConflictRetry(replace(CONFLICTS, attempts=4),
                                                     sleep=pauses))
    assert calls == 4
    assert len(pauses.taken) == 3
    assert all(0 <= p <= 0.2 for p in pauses.taken)


async def test_no_attempt_starts_after_the_budget() -> None:
    now = 100.0
    calls = 0

    async def slow_conflict() -> None:  # as a lock wait timeout: 4 s, then given up
        nonlocal calls, now
        calls += 1
        now += 4.0
        raise TransientConflict("lock wait timeout")

    retry = ConflictRetry(replace(CONFLICTS, attempts=5), budget_s=10.0, sleep=Pauses(),
                          clock=lambda: now)
    with pytest.raises(TransientConflict):
        await retry_conflicts(slow_conflict, retry)
    assert calls == 3  # begun at 0, 4 and 8 s; a fourth would begin at 12 s


async def test_other_errors_are_not_retried() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise StorageUnavailable("connection refused")

    with pytest.raises(StorageUnavailable):
        await retry_conflicts(attempt, ConflictRetry(sleep=Pauses()))
    assert calls == 1


async def test_in_transaction_reruns_the_body_in_a_fresh_unit(world: World) -> None:
    world.db.fail_commits = conflicts(2)
    units: list[UnitOfWork] = []

    async def body(uow: UnitOfWork) -> int:
        units.append(uow)
        await uow.ledger.apply(topup("t1", 1, 5))
        await uow.commit()
        return len(units)

    assert await in_transaction(world.db.uow, body) == 3
    assert len({id(u) for u in units}) == 3
    assert world.db.commits == 1
    assert world.balance(1) == 5  # the failed attempts left nothing


async def test_a_send_whose_transaction_conflicts_is_accepted_once(world: World) -> None:
    await world.accounts.top_up(TopUp(1, 100))
    world.db.fail_commits = conflicts(2)

    accepted = await world.sender.send(SendSms(1, "hi", ("+989120000001",),
                                               idempotency_key="k1"))

    charges = [t for t in world.transactions(1) if t.type is TransactionType.CHARGE]
    assert [t.amount for t in charges] == [-accepted.cost]
    assert world.balance(1) == 100 - accepted.cost
    assert len(world.messages(accepted.sms_identifier)) == 1
    assert len(world.db.state.outbox) == 1
    assert list(world.db.state.idempotency) == [(1, "k1")]


async def test_a_group_of_sends_whose_transaction_conflicts_is_accepted_once(
    world: World,
) -> None:
    await world.accounts.top_up(TopUp(1, 100))
    await world.accounts.top_up(TopUp(2, 1))
    world.db.fail_commits = conflicts(2)
    commands = [SendSms(1, "a", ("+989120000001",)), SendSms(2, "b", ("+989120000002",)),
                SendSms(2, "c", ("+989120000003",))]  # the second of user 2 is refused

    answers = await world.sender.send_many(commands)

    assert [type(a).__name__ for a in answers] == ["Accepted", "Accepted",
                                                    "InsufficientBalance"]
    assert len([t for t in world.transactions() if t.type is TransactionType.CHARGE]) == 2
    assert (world.balance(1), world.balance(2)) == (99, 0)
    assert len(world.db.state.outbox) == 2


async def test_a_send_that_keeps_conflicting_writes_nothing(world: World) -> None:
    await world.accounts.top_up(TopUp(1, 100))
    world.db.fail_commits = conflicts(5)

    with pytest.raises(TransientConflict):
        await world.sender.send(SendSms(1, "hi", ("+989120000001",)))

    assert world.balance(1) == 100
    assert world.messages() == []
    assert world.db.state.outbox == {}


async def test_a_top_up_whose_transaction_conflicts_credits_once(world: World) -> None:
    world.db.fail_commits = conflicts(3)

    assert await world.accounts.top_up(TopUp(1, 40, idempotency_key="t")) == 40

    assert [t.amount for t in world.transactions(1)] == [40]
