"""Delivery: failover across operators, refunds, redelivery and crashes.

On the in-memory fakes (tests/unit/core_world.py); assertions are on state.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta

import pytest
from core_world import (
    N1,
    N2,
    N3,
    U,
    World,
    accepted_delivery,
    fund,
)

from smsgw_adapters import codec
from smsgw_core.ledger import TransactionType, refund_id
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.operators import CircuitOpen, ErrorClass, OperatorError, OutgoingSms
from smsgw_core.outbox import DeliveryJob
from smsgw_core.pricing import Tariff
from smsgw_core.services.deliver import DeliveryCounts
from smsgw_core.testing import CountingCircuitBreaker, FakeClock, always

# --- deliver --------------------------------------------------------------------------


async def test_first_operator_ok(world: World) -> None:
    await fund(world, 10)
    delivery = await accepted_delivery(world, (N1, N2))
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(2, 0, 0)
    rows = world.messages()
    assert all((m.status, m.provider) == (SmsStatus.DONE, "A") for m in rows)
    assert (world.a.calls, world.b.calls) == (2, 0)
    assert {s.reference for s in world.a.sent} == {
        f"{delivery.sms_identifier}:{N1}", f"{delivery.sms_identifier}:{N2}",
    }
    assert all(s.text == "hello" for s in world.a.sent)
    # The SMS's validity goes with it, for an operator that can carry it (SMPP).
    assert delivery.accepted_at is not None
    assert {s.valid_until for s in world.a.sent} == {
        delivery.accepted_at + world.validity.validity}
    assert world.balance(U) == 8
    assert not [t for t in world.transactions() if t.type is TransactionType.REFUND]


async def test_transient_error_fails_over_to_the_next_operator(world: World) -> None:
    world.a.behaviour = always(ErrorClass.TRANSIENT)
    await fund(world, 10)
    delivery = await accepted_delivery(world)
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(1, 0, 0)
    [row] = world.messages()
    assert (row.status, row.provider) == (SmsStatus.DONE, "B")
    assert (world.a.calls, world.b.calls) == (1, 1)
    assert world.balance(U) == 9


async def test_permanent_error_fails_at_once_and_refunds(world: World) -> None:
    world.a.behaviour = always(ErrorClass.PERMANENT)
    await fund(world, 10)
    delivery = await accepted_delivery(world, type=MessageType.EXPRESS)
    assert world.balance(U) == 7
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(0, 1, 0)
    [row] = world.messages()
    assert (row.status, row.provider) == (SmsStatus.FAILED, "")
    assert world.b.calls == 0
    [refund] = [t for t in world.transactions() if t.type is TransactionType.REFUND]
    assert refund.transaction_id == refund_id(delivery.sms_identifier, N1)
    assert refund.amount == 3 == delivery.unit_share
    assert refund.description == f"refund: {N1} undeliverable (rejected)"
    assert world.balance(U) == 10


async def test_all_transient_defers_and_nothing_is_refunded_yet(world: World) -> None:
    world.a.behaviour = always(ErrorClass.TRANSIENT)
    world.b.behaviour = always(ErrorClass.TRANSIENT)
    await fund(world, 10)
    delivery = await accepted_delivery(world, (N1, N2))
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(0, 0, 2, deferred=2)
    assert all(m.status is SmsStatus.PENDING for m in world.messages())
    assert world.balance(U) == 8
    assert not [t for t in world.transactions() if t.type is TransactionType.REFUND]
    # the bus delivers it again at once: the recipients wait for their retry time,
    # but a duplicate may claim them (they are PENDING): it tries the operators again
    assert (world.a.calls, world.b.calls) == (2, 2)


async def test_a_mixed_outcome_refunds_only_the_failed_recipient(world: World) -> None:
    world.a.behaviour = lambda sms: ErrorClass.PERMANENT if sms.recipient == N2 else "ok"
    await fund(world, 10)
    delivery = await accepted_delivery(world, (N1, N2, N3))
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(2, 1, 0)
    status = {m.recipient: m.status for m in world.messages()}
    assert status == {N1: SmsStatus.DONE, N2: SmsStatus.FAILED, N3: SmsStatus.DONE}
    assert world.balance(U) == 10 - 3 + 1


async def test_a_second_delivery_of_the_same_message_does_nothing(world: World) -> None:
    await fund(world, 10)
    delivery = await accepted_delivery(world, (N1, N2))
    await world.deliverer.deliver(delivery)
    before = copy.deepcopy(world.db.state)
    calls = world.a.calls
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(0, 0, 2)
    assert world.db.state == before
    assert world.a.calls == calls


async def test_no_operators_defers(world: World) -> None:
    world.deliverer.operators = []
    await fund(world, 10)
    delivery = await accepted_delivery(world)
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(0, 0, 1, deferred=1)
    assert [m.status for m in world.messages()] == [SmsStatus.PENDING]


class WorkerKilled(BaseException):
    """Like a cancellation or kill: not an error failover could absorb."""


async def test_a_crash_mid_send_leaves_sending_and_a_redelivery_finishes(world: World) -> None:
    def crash(sms: OutgoingSms) -> str:
        raise WorkerKilled()

    world.a.behaviour = crash
    await fund(world, 10)
    delivery = await accepted_delivery(world)
    with pytest.raises(WorkerKilled):
        await world.deliverer.deliver(delivery)
    [row] = world.messages()
    assert row.status is SmsStatus.SENDING  # the claim committed, the outcome did not
    world.a.behaviour = lambda sms: "id-1"
    # within the lease the recipient belongs to the (dead) delivery: nothing to claim
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(0, 0, 1)
    world.clock.advance(world.validity.lease + timedelta(seconds=1))
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(1, 0, 0)
    [row] = world.messages()
    assert (row.status, row.provider) == (SmsStatus.DONE, "A")
    assert world.balance(U) == 9


class HeldOperator:
    """An operator that answers only once released: a send in flight."""

    name = "A"

    def __init__(self) -> None:
        self.called = asyncio.Event()

    async def send(self, sms: OutgoingSms) -> str:
        self.called.set()
        await asyncio.Event().wait()
        raise AssertionError("never released")


@pytest.mark.parametrize("recipients", [(N1,), (N1, N2, N3)])
async def test_a_stopped_delivery_hands_its_unanswered_recipients_back(
    world: World, recipients: tuple[str, ...],
) -> None:
    held = HeldOperator()
    world.deliverer.operators = [held]
    await fund(world, 10)
    delivery = await accepted_delivery(world, recipients)
    task = asyncio.create_task(world.deliverer.deliver(delivery))
    await asyncio.wait_for(held.called.wait(), 5)
    task.cancel()  # a SIGTERM's stop
    with pytest.raises(asyncio.CancelledError):
        await task
    # Back to PENDING (not left SENDING for a lease), nothing failed or refunded.
    assert [m.status for m in world.messages()] == [SmsStatus.PENDING] * len(recipients)
    assert world.balance(U) == 10 - len(recipients)


async def test_an_operator_adapter_bug_counts_as_that_operators_failure(world: World) -> None:
    def broken(sms: OutgoingSms) -> str:
        raise RuntimeError("adapter bug")

    world.a.behaviour = broken
    await fund(world, 10)
    delivery = await accepted_delivery(world)
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(1, 0, 0)
    [row] = world.messages()
    assert (row.status, row.provider) == (SmsStatus.DONE, "B")


async def test_a_half_open_breaker_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CountingCircuitBreaker(clock, threshold=1, reset=timedelta(seconds=5))
    gate = asyncio.Event()

    async def failing() -> str:
        raise OperatorError("A", ErrorClass.TRANSIENT, "down")

    async def slow_ok() -> str:
        await gate.wait()
        return "ok"

    with pytest.raises(OperatorError):
        await breaker.call("A", failing)
    clock.advance(timedelta(seconds=6))
    trial = asyncio.create_task(breaker.call("A", slow_ok))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen):
        await breaker.call("A", slow_ok)  # a second caller while the trial runs
    gate.set()
    assert await trial == "ok"
    assert await breaker.call("A", slow_ok) == "ok"  # closed again


async def test_free_messages_fail_without_a_refund_row() -> None:
    world = World(tariff=Tariff(normal=0))
    world.a.behaviour = always(ErrorClass.PERMANENT)
    await fund(world, 1)
    delivery = await accepted_delivery(world)
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(0, 1, 0)
    assert [t.type for t in world.transactions()] == [TransactionType.TOPUP,
                                                      TransactionType.CHARGE]


def test_delivery_payload_round_trip() -> None:
    delivery = DeliveryJob("sms-1", 3, MessageType.EXPRESS, "hi €", (N1, N3), 6)
    assert codec.from_document(codec.to_document(delivery)) == delivery
    assert delivery.priority == 10
