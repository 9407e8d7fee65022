"""The use cases, example by example, on the in-memory fakes; assertions are on state."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from core_world import World
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw_core.errors import (
    DuplicateTransaction,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidCursor,
    InvalidRequest,
    UnknownAccount,
)
from smsgw_core.fakes import CountingCircuitBreaker, FakeClock, ScriptedOperator, always
from smsgw_core.ledger import TransactionType, charge_id, refund_id, topup_id
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.operators import CircuitOpen, ErrorClass, OperatorError, OutgoingSms
from smsgw_core.outbox import Delivery, RetryPolicy
from smsgw_core.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PageRequest,
    decode_cursor,
    encode_cursor,
)
from smsgw_core.ports import HistoryFilter
from smsgw_core.pricing import Tariff
from smsgw_core.services.accounts import TopUp
from smsgw_core.services.deliver import DeliveryCounts
from smsgw_core.services.relay import RelayReport
from smsgw_core.services.send_sms import Accepted, SendSms

U = 1  # the customer most tests use
N1, N2, N3 = "09128582812", "091285284834", "+989121234567"


@contextmanager
def writes_nothing(world: World) -> Iterator[None]:
    before, commits = copy.deepcopy(world.db.state), world.db.commits
    yield
    assert world.db.commits == commits
    assert world.db.state == before


async def fund(world: World, amount: int = 1000, user: int = U) -> None:
    await world.accounts.top_up(TopUp(user, amount))


async def send(
    world: World,
    recipients: tuple[str, ...] = (N1,),
    text: str = "hello",
    type: MessageType = MessageType.NORMAL,
    key: str | None = None,
    user: int = U,
) -> Accepted:
    return await world.sender.send(SendSms(user, text, recipients, type, key))


def outbox_rows(world: World) -> list[Any]:
    return list(world.db.state.outbox.values())


# --- send -----------------------------------------------------------------------------


async def test_send_charges_and_records_pending_rows_and_one_event(world: World) -> None:
    await fund(world, 100)
    accepted = await send(world, (N1, N2, N3), "hello")
    assert accepted == Accepted(accepted.sms_identifier, segments=1, cost=3, recipients=3)

    rows = world.messages(accepted.sms_identifier)
    assert [m.recipient for m in rows] == [N1, N2, N3]
    assert all(m.status is SmsStatus.PENDING and m.provider == "" for m in rows)
    assert all(m.user_id == U and m.type is MessageType.NORMAL for m in rows)

    [event_row] = outbox_rows(world)
    assert event_row.status == "pending"
    assert event_row.event.priority == 0
    assert event_row.event.aggregate_id == accepted.sms_identifier
    assert event_row.event.delivery() == Delivery(
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
    accepted = await send(world, (N1, N2, N1, f" {N2} ", N1))
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
    assert (err.value.user_id, err.value.cost) == (U, 1)


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
        (SendSms(U, "a" * 1531, (N1,)), "text"),
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
     base64.urlsafe_b64encode(b"p+5").decode(), base64.urlsafe_b64encode(b"p1_0").decode(),
     base64.urlsafe_b64encode(b"p 7").decode()],
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


# --- relay ----------------------------------------------------------------------------


async def test_relay_publishes_and_marks_published(world: World) -> None:
    await fund(world)
    accepted = await send(world, (N1, N2))
    assert await world.relay.relay_once() == RelayReport(1, 0, 0)
    [delivery] = world.bus.published
    assert delivery.sms_identifier == accepted.sms_identifier
    assert delivery.recipients == (N1, N2)
    assert outbox_rows(world)[0].status == "published"
    assert await world.relay.relay_once() == RelayReport(0, 0, 0)
    assert len(world.bus.published) == 1


async def test_express_is_claimed_before_older_normal_events(world: World) -> None:
    world.relay.batch_size = 1
    await fund(world)
    n1 = await send(world, text="normal 1")
    n2 = await send(world, text="normal 2")
    world.clock.advance(timedelta(seconds=5))
    e1 = await send(world, text="otp 1", type=MessageType.EXPRESS)
    e2 = await send(world, text="otp 2", type=MessageType.EXPRESS)
    for _ in range(4):
        await world.relay.relay_once()
    assert [d.sms_identifier for d in world.bus.published] == [
        e1.sms_identifier, e2.sms_identifier, n1.sms_identifier, n2.sms_identifier,
    ]


async def test_batch_size_bounds_a_relay_pass(world: World) -> None:
    world.relay.batch_size = 2
    await fund(world)
    for _ in range(5):
        await send(world)
    reports = [await world.relay.relay_once() for _ in range(4)]
    assert [r.published for r in reports] == [2, 2, 1, 0]


async def test_bus_failure_retries_later_with_backoff(world: World) -> None:
    await fund(world)
    await send(world)
    world.bus.fail_with = ConnectionError("broker down")
    t0 = world.clock.now()

    assert await world.relay.relay_once() == RelayReport(0, 1, 0)
    [row] = outbox_rows(world)
    assert (row.status, row.event.attempts) == ("pending", 1)
    assert row.run_at == t0 + timedelta(milliseconds=500)
    assert "broker down" in (row.last_error or "")

    # not due yet: nothing is claimed, no attempt is counted
    assert await world.relay.relay_once() == RelayReport(0, 0, 0)
    assert outbox_rows(world)[0].event.attempts == 1

    world.clock.advance(timedelta(milliseconds=500))
    assert await world.relay.relay_once() == RelayReport(0, 1, 0)
    [row] = outbox_rows(world)
    assert row.event.attempts == 2
    assert row.run_at == world.clock.now() + timedelta(seconds=1)

    world.bus.fail_with = None
    world.clock.advance(timedelta(seconds=1))
    assert await world.relay.relay_once() == RelayReport(1, 0, 0)
    assert outbox_rows(world)[0].status == "published"
    assert len(world.bus.published) == 1


def test_backoff_policy() -> None:
    policy = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=10))
    assert [policy.delay(n).total_seconds() for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert policy.delay(10_000) == timedelta(seconds=10)


async def test_a_claimed_event_is_not_reclaimed_until_its_lease_ends(world: World) -> None:
    await fund(world)
    await send(world)
    lease = world.relay.policy.lease
    # a relay claims the event, then dies before publishing
    async with world.db.uow() as uow:
        [claimed] = await uow.outbox.claim_due(
            world.clock.now(), 10, world.clock.now() + lease
        )
        await uow.commit()
    assert claimed.attempts == 1
    assert await world.relay.relay_once() == RelayReport(0, 0, 0)
    world.clock.advance(lease - timedelta(milliseconds=1))
    assert await world.relay.relay_once() == RelayReport(0, 0, 0)
    world.clock.advance(timedelta(milliseconds=1))
    assert await world.relay.relay_once() == RelayReport(1, 0, 0)
    assert outbox_rows(world)[0].event.attempts == 0  # published: the count starts over
    assert len(world.bus.published) == 1


async def test_redrive_requeues_published_but_unfinished_only(world: World) -> None:
    await fund(world)
    finished = await send(world, text="finished")
    lost = await send(world, text="lost")
    pending = await send(world, text="never published")
    world.relay.batch_size = 2
    await world.relay.relay_once()
    by_id = {d.sms_identifier: d for d in world.bus.published}
    assert set(by_id) == {finished.sms_identifier, lost.sms_identifier}
    await world.deliverer.deliver(by_id[finished.sms_identifier])  # `lost` never arrives

    world.clock.advance(timedelta(minutes=1))
    everywhere = list(MessageType)
    assert await world.relay.redrive(timedelta(minutes=5), everywhere) == 0  # not long enough
    assert await world.relay.redrive(timedelta(seconds=30)) == 0  # its queue may hold it
    assert await world.relay.redrive(timedelta(seconds=30), everywhere) == 1
    statuses = {r.event.aggregate_id: r.status for r in outbox_rows(world)}
    assert statuses == {
        finished.sms_identifier: "published",
        lost.sms_identifier: "pending",
        pending.sms_identifier: "pending",
    }
    world.relay.batch_size = 10
    world.bus.published.clear()
    await world.relay_and_deliver()
    assert {d.sms_identifier for d in world.bus.published} == {
        lost.sms_identifier, pending.sms_identifier,
    }
    assert all(m.status is SmsStatus.DONE for m in world.messages())
    assert await world.relay.redrive(timedelta(0), everywhere) == 0


# --- deliver --------------------------------------------------------------------------


async def accepted_delivery(
    world: World, recipients: tuple[str, ...] = (N1,), type: MessageType = MessageType.NORMAL
) -> Delivery:
    await send(world, recipients, type=type)
    start = len(world.bus.published)
    await world.relay.relay_once()
    [delivery] = world.bus.published[start:]
    return delivery


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
    delivery = Delivery("sms-1", 3, MessageType.EXPRESS, "hi €", (N1, N3), 6)
    assert Delivery.from_payload(delivery.to_payload()) == delivery
    assert delivery.priority == 10


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


async def test_an_undecodable_event_is_parked_at_once_and_the_rest_published(
    world: World,
) -> None:
    await fund(world, 10)
    good = await send(world)
    await send(world)
    [_, bad] = sorted(world.db.state.outbox)
    world.db.state.outbox[bad].event = replace(
        world.db.state.outbox[bad].event, payload={"sms_identifier": "x"}
    )
    report = await world.relay.relay_once()
    assert report == RelayReport(published=1, retried=0, parked=1)
    assert [d.sms_identifier for d in world.bus.published] == [good.sms_identifier]
    row = world.db.state.outbox[bad]
    assert row.status == "parked"
    assert row.last_error is not None and "undecodable payload" in row.last_error
