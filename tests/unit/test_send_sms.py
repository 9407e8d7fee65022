"""Sending: the charge, the pending rows and the event, refusals, and idempotent replays.

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
    outbox_rows,
    send,
    writes_nothing,
)

from smsgw_core.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidRequest,
)
from smsgw_core.ledger import TransactionType, charge_id
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.outbox import DeliveryJob
from smsgw_core.pricing import Tariff
from smsgw_core.services.send_sms import Accepted, SendSms

# --- send -----------------------------------------------------------------------------


async def test_send_charges_and_records_pending_rows_and_one_event(world: World) -> None:
    await fund(world, 100)
    accepted = await send(world, (N1, N2, N3), "hello")
    assert accepted == Accepted(accepted.sms_identifier, segments=1, cost=3, recipients=3)

    rows = world.messages(accepted.sms_identifier)
    assert [m.recipient for m in rows] == [N1, N2, N3]
    assert all(m.status is SmsStatus.PENDING and m.provider == "" for m in rows)
    assert all(m.customer_id == U and m.type is MessageType.NORMAL for m in rows)

    [event_row] = outbox_rows(world)
    assert event_row.status == "pending"
    assert event_row.event.priority == 0
    assert event_row.event.aggregate_id == accepted.sms_identifier
    assert event_row.event.delivery() == DeliveryJob(
        accepted.sms_identifier, U, MessageType.NORMAL, "hello", (N1, N2, N3), unit_share=1,
        accepted_at=world.clock.now(),
    )

    charges = [t for t in world.transactions(U) if t.type is TransactionType.CHARGE]
    assert len(charges) == 1
    assert charges[0].transaction_id == charge_id(accepted.sms_identifier)
    assert charges[0].amount == -3
    assert world.balance(U) == 97


async def test_express_costs_more_and_has_priority_ten(world: World) -> None:
    await fund(world, 100)
    accepted = await send(world, (N1, N2), "a" * 161, MessageType.EXPRESS)
    assert (accepted.segments, accepted.cost) == (2, 2 * 2 * 3)
    [event_row] = outbox_rows(world)
    assert event_row.event.priority == 10
    assert event_row.event.delivery().unit_share == 6
    assert world.balance(U) == 100 - 12


async def test_duplicate_recipients_are_charged_once(world: World) -> None:
    await fund(world, 100)
    accepted = await send(world, (N1, N2, N1, N2, N1))
    assert (accepted.recipients, accepted.cost) == (2, 2)
    assert [m.recipient for m in world.messages()] == [N1, N2]
    assert world.balance(U) == 98


async def test_exact_balance_is_enough(world: World) -> None:
    await fund(world, 3)
    await send(world, (N1, N2, N3))
    assert world.balance(U) == 0


async def test_unknown_customer_is_refused_and_nothing_is_written(world: World) -> None:
    await fund(world, 100, user=2)
    with writes_nothing(world), pytest.raises(InsufficientBalance) as err:
        await send(world, user=U)
    assert (err.value.customer_id, err.value.cost) == (U, 1)


async def test_short_balance_is_refused_and_nothing_is_written(world: World) -> None:
    await fund(world, 2)
    with writes_nothing(world), pytest.raises(InsufficientBalance) as err:
        await send(world, (N1, N2, N3))
    assert err.value.cost == 3


async def test_free_tariff_still_refuses_an_unknown_customer() -> None:
    world = World(tariff=Tariff(normal=0, express=0))
    with writes_nothing(world), pytest.raises(InsufficientBalance):
        await send(world)
    await fund(world, 1)
    accepted = await send(world)
    assert accepted.cost == 0
    assert world.balance(U) == 1


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (SendSms(0, "hi", (N1,)), "customer_id"),
        (SendSms(-3, "hi", (N1,)), "customer_id"),
        (SendSms(U, "", (N1,)), "text"),
        (SendSms(U, "a" * 1601, (N1,)), "text"),
        (SendSms(U, "hi", ()), "recipients"),
        (SendSms(U, "hi", (N1, "abc", "123")), "recipients"),
        (SendSms(U, "hi", (N1,), idempotency_key=""), "Idempotency-Key"),
        (SendSms(U, "hi", (N1,), idempotency_key="k" * 101), "Idempotency-Key"),
    ],
)
async def test_invalid_requests_name_the_field_and_write_nothing(
    world: World, command: SendSms, field: str
) -> None:
    await fund(world)
    with writes_nothing(world), pytest.raises(InvalidRequest) as err:
        await world.sender.send(command)
    assert err.value.field == field


async def test_outbox_signal_is_notified_after_commit_only(world: World) -> None:
    class Signal:
        def __init__(self) -> None:
            self.count = 0

        def notify(self) -> None:
            self.count += 1

    signal = Signal()
    world.sender.signal = signal
    with pytest.raises(InsufficientBalance):
        await send(world)
    assert signal.count == 0
    await fund(world)
    await send(world)
    assert signal.count == 1


# --- idempotency ----------------------------------------------------------------------


async def test_same_key_same_body_replays_and_charges_once(world: World) -> None:
    await fund(world, 100)
    first = await send(world, (N1, N2), key="k-1")
    commits = world.db.commits
    second = await send(world, (N1, N2), key="k-1")
    assert second == first
    assert world.db.commits == commits
    assert len(world.messages()) == 2
    assert len(outbox_rows(world)) == 1
    assert [t.type for t in world.transactions(U)] == [TransactionType.TOPUP,
                                                       TransactionType.CHARGE]
    assert world.balance(U) == 98


async def test_same_key_different_body_conflicts(world: World) -> None:
    await fund(world, 100)
    await send(world, (N1, N2), key="k-1")
    for other in (
        SendSms(U, "hello", (N1,), MessageType.NORMAL, "k-1"),
        SendSms(U, "hello!", (N1, N2), MessageType.NORMAL, "k-1"),
        SendSms(U, "hello", (N1, N2), MessageType.EXPRESS, "k-1"),
    ):
        with writes_nothing(world), pytest.raises(IdempotencyConflict) as err:
            await world.sender.send(other)
        assert err.value.key == "k-1"


async def test_keys_are_per_customer(world: World) -> None:
    await fund(world, 100, user=1)
    await fund(world, 100, user=2)
    a = await send(world, key="k", user=1)
    b = await send(world, key="k", user=2)
    assert a.sms_identifier != b.sms_identifier
    assert (world.balance(1), world.balance(2)) == (99, 99)


async def test_a_refused_keyed_request_can_be_retried_after_a_top_up(world: World) -> None:
    with pytest.raises(InsufficientBalance):
        await send(world, key="k")
    await fund(world, 10)
    accepted = await send(world, key="k")
    assert accepted == await send(world, key="k")
    assert world.balance(U) == 9
