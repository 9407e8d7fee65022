"""Delivery under the circuit breaker: open circuits are skipped, half-open ones tried.

On the in-memory fakes (tests/unit/core_world.py); assertions are on state.
"""

from __future__ import annotations

from datetime import timedelta

from core_world import (
    N1,
    U,
    World,
    accepted_delivery,
    fund,
)

from smsgw_core.ledger import TransactionType
from smsgw_core.messages import SmsStatus
from smsgw_core.operators import ErrorClass, OutgoingSms
from smsgw_core.services.deliver import DeliveryCounts
from smsgw_core.testing import ScriptedOperator, always

# --- circuit breaker ------------------------------------------------------------------


async def test_breaker_opens_after_threshold_and_half_opens_after_reset() -> None:
    world = World(breaker_threshold=2)
    world.a.behaviour = always(ErrorClass.TRANSIENT)
    await fund(world, 100)

    async def deliver_one() -> str:
        delivery = await accepted_delivery(world)
        await world.deliverer.deliver(delivery)
        [row] = world.messages(delivery.sms_identifier)
        assert row.status is SmsStatus.DONE
        return row.provider

    assert await deliver_one() == "B"  # A failure 1
    assert await deliver_one() == "B"  # A failure 2: open
    assert world.breaker.is_open("A")
    calls = world.a.calls
    assert await deliver_one() == "B"
    assert world.a.calls == calls  # A was skipped

    world.clock.advance(timedelta(seconds=29))
    assert await deliver_one() == "B"
    assert world.a.calls == calls

    world.clock.advance(timedelta(seconds=1))  # half-open: A is tried, fails, opens again
    assert not world.breaker.is_open("A")
    assert await deliver_one() == "B"
    assert world.a.calls == calls + 1
    assert world.breaker.is_open("A")

    world.clock.advance(timedelta(seconds=30))  # half-open again; now A recovers
    world.a.behaviour = lambda sms: "ok"
    assert await deliver_one() == "A"
    assert not world.breaker.is_open("A")
    assert await deliver_one() == "A"


async def test_breaker_ignores_permanent_errors() -> None:
    world = World(breaker_threshold=2)
    world.a.behaviour = always(ErrorClass.PERMANENT)
    await fund(world, 100)
    for _ in range(4):
        await world.deliverer.deliver(await accepted_delivery(world))
    assert not world.breaker.is_open("A")
    assert world.a.calls == 4
    assert world.b.calls == 0


async def test_all_breakers_open_defers_without_calling_anyone() -> None:
    world = World(breaker_threshold=1)
    world.a.behaviour = always(ErrorClass.TRANSIENT)
    world.b.behaviour = always(ErrorClass.TRANSIENT)
    await fund(world, 100)
    await world.deliverer.deliver(await accepted_delivery(world))
    assert world.breaker.is_open("A") and world.breaker.is_open("B")
    calls = (world.a.calls, world.b.calls)
    delivery = await accepted_delivery(world)
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(0, 0, 1, deferred=1)
    assert (world.a.calls, world.b.calls) == calls
    assert world.balance(U) == 98
    assert not [t for t in world.transactions() if t.type is TransactionType.REFUND]


async def test_scripted_operator_default_answers_with_an_id() -> None:
    op = ScriptedOperator("X")
    sms = OutgoingSms(N1, "hi", "sms-1:" + N1)
    assert (op.name, await op.send(sms)) == ("X", f"X-sms-1:{N1}")
    assert (op.calls, op.sent) == (1, [sms])
