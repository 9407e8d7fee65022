"""No accepted recipient stays unfinished with the money held.

- a publish that keeps failing is retried with a capped backoff, never parked, and
  its attempts count only the failures in a row of the current try;
- when no operator can take a message it waits (PENDING) and is tried again;
- past the SMS's validity whatever is unfinished fails as "expired", refunded once;
- a delivery lost mid-send is noticed once its lease lapses;
- refunds tell customers a reason code, never an operator's error text.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from core_world import World

from smsgw_core.backoff import Backoff
from smsgw_core.ledger import TransactionType, refund_id
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms
from smsgw_core.outbox import DeliveryJob, RetryPolicy
from smsgw_core.services.accounts import TopUp
from smsgw_core.services.deliver import DeliveryCounts
from smsgw_core.services.relay import RelayReport
from smsgw_core.services.send_sms import Accepted, SendSms
from smsgw_core.testing import ScriptedOperator, always
from smsgw_core.validity import DeliveryPolicy

U = 1
N1, N2 = "09128582812", "091285284834"
DAY = timedelta(hours=24)


async def accept(world: World, recipients: tuple[str, ...] = (N1, N2)) -> Accepted:
    await world.accounts.top_up(TopUp(U, 100))
    return await world.sender.send(SendSms(U, "hello", recipients))


def refunds(world: World) -> list[str]:
    return [t.description for t in world.transactions() if t.type is TransactionType.REFUND]


def statuses(world: World) -> list[SmsStatus]:
    return [m.status for m in world.messages()]


def event_row(world: World) -> object:
    [row] = world.db.state.outbox.values()
    return row


async def relay_until_quiet(world: World) -> None:
    while (await world.relay.relay_once()).published:
        pass


async def deliver_published(world: World) -> list[DeliveryCounts]:
    published, world.bus.published = world.bus.published, []
    return [await world.deliverer.deliver(d) for d in published]


# --- an outage ends in delivery or in refunds, never in money held -----------


async def test_a_failing_publish_is_retried_with_a_capped_backoff_and_never_parked() -> None:
    world = World(policy=RetryPolicy(Backoff(first=1, ceiling=60)))
    await accept(world)
    world.bus.fail_with = ConnectionError("broker down")
    waits = []
    for _ in range(200):  # far more than the 20 attempts that used to park it
        before = world.clock.now()
        assert await world.relay.relay_once() == RelayReport(0, 1, 0)
        row = event_row(world)
        assert row.status == "pending"  # type: ignore[attr-defined]
        waits.append(row.run_at - before)  # type: ignore[attr-defined]
        world.clock.advance(row.run_at - before)  # type: ignore[attr-defined]
    assert waits[:4] == [timedelta(seconds=s) for s in (1, 2, 4, 8)]
    assert max(waits) == timedelta(seconds=60)
    assert event_row(world).event.attempts == 200  # type: ignore[attr-defined]
    world.bus.fail_with = None
    assert await world.relay.relay_once() == RelayReport(1, 0, 0)
    assert event_row(world).event.attempts == 0  # type: ignore[attr-defined]
    assert world.balance(U) == 98 and refunds(world) == []


async def test_an_outage_past_validity_fails_and_refunds_each_recipient_once() -> None:
    world = World(validity=DeliveryPolicy(validity=timedelta(hours=1)))
    accepted = await accept(world)
    world.bus.fail_with = ConnectionError("broker down")
    while world.clock.now() < accepted_at(world) + timedelta(hours=1):
        report = await world.relay.relay_once()
        assert report.expired == 0 and report.published == 0
        world.clock.advance(timedelta(seconds=61))
    world.clock.advance(timedelta(minutes=2))
    assert await world.relay.relay_once() == RelayReport(0, 0, 0, expired=1)
    assert statuses(world) == [SmsStatus.FAILED, SmsStatus.FAILED]
    assert sorted(refunds(world)) == [
        f"refund: {n} undeliverable (expired)" for n in sorted((N1, N2))
    ]
    assert world.balance(U) == 100
    assert world.bus.published == []
    # nothing runs twice: the event is settled, a redrive and a relay find nothing
    world.bus.fail_with = None
    world.clock.advance(timedelta(hours=2))
    assert await world.relay.redrive(timedelta(0), list(MessageType)) == 0
    assert await world.relay.relay_once() == RelayReport(0, 0, 0)
    assert sorted(t.transaction_id for t in world.transactions()
                  if t.type is TransactionType.REFUND) == sorted(
        refund_id(accepted.sms_identifier, n) for n in (N1, N2)
    )


def accepted_at(world: World) -> object:
    return event_row(world).event.created_at  # type: ignore[attr-defined]


async def test_a_delivery_taken_past_validity_fails_as_expired_without_calling_anyone() -> None:
    world = World(validity=DeliveryPolicy(validity=timedelta(minutes=10)))
    await accept(world)
    await world.relay.relay_once()
    world.clock.advance(timedelta(minutes=11))  # it sat in a queue that long
    [report] = await deliver_published(world)
    assert report == DeliveryCounts(0, 2, 0)
    assert (world.a.calls, world.b.calls) == (0, 0)
    assert all("(expired)" in d for d in refunds(world)) and len(refunds(world)) == 2
    assert world.balance(U) == 100


# --- no operator available is a reason to wait, not to fail -----------------


async def test_a_short_outage_of_every_operator_delays_but_delivers() -> None:
    world = World()
    await accept(world)
    world.a.behaviour = always(ErrorClass.TRANSIENT)
    world.b.behaviour = always(ErrorClass.TRANSIENT)
    await world.relay.relay_once()
    [report] = await deliver_published(world)
    assert report.deferred == 2 and statuses(world) == [SmsStatus.PENDING] * 2
    row = event_row(world)
    assert row.status == "pending"  # type: ignore[attr-defined]
    assert row.run_at == world.clock.now() + timedelta(seconds=1)  # type: ignore[attr-defined]
    # not due yet: nothing is published before the retry time
    assert await world.relay.relay_once() == RelayReport(0, 0, 0)
    world.a.behaviour = lambda sms: "id"  # A is back three seconds later
    world.clock.advance(timedelta(seconds=3))
    await relay_until_quiet(world)
    [report] = await deliver_published(world)
    assert report == DeliveryCounts(2, 0, 0)
    assert statuses(world) == [SmsStatus.DONE] * 2
    assert refunds(world) == [] and world.balance(U) == 98


class FastWorkerBus:
    """A worker so quick that it settles each delivery before the relay marks it published."""

    def __init__(self) -> None:
        self.world: World | None = None
        self.reports: list[DeliveryCounts] = []

    async def publish(self, deliveries: list[DeliveryJob]) -> None:
        assert self.world is not None
        for delivery in deliveries:
            self.reports.append(await self.world.deliverer.deliver(delivery))


async def test_a_deferral_before_the_relay_marks_the_event_published_stands() -> None:
    world = World()
    bus = FastWorkerBus()
    bus.world = world
    world.relay.bus = bus
    world.a.behaviour = always(ErrorClass.TRANSIENT)
    world.b.behaviour = always(ErrorClass.TRANSIENT)
    await accept(world, (N1,))
    assert (await world.relay.relay_once()).published == 1
    row = event_row(world)
    assert row.status == "pending"  # type: ignore[attr-defined]
    assert row.run_at == world.clock.now() + timedelta(seconds=1)  # type: ignore[attr-defined]
    world.a.behaviour = lambda sms: "id"
    world.clock.advance(timedelta(seconds=1))
    assert (await world.relay.relay_once()).published == 1
    assert [r.done for r in bus.reports] == [0, 1]
    assert event_row(world).status == "published"  # type: ignore[attr-defined]


async def test_a_long_outage_retries_less_often_and_expires_at_validity() -> None:
    world = World(validity=DeliveryPolicy(validity=timedelta(hours=1)))
    await accept(world, (N1,))
    world.a.behaviour = always(ErrorClass.TRANSIENT)
    world.b.behaviour = always(ErrorClass.TRANSIENT)
    tries = 0
    while not all(s.terminal for s in statuses(world)):
        await relay_until_quiet(world)
        tries += len(await deliver_published(world))
        row = event_row(world)
        world.clock.advance(max(row.run_at - world.clock.now(),  # type: ignore[attr-defined]
                                timedelta(milliseconds=1)))
        assert tries < 200
    # waits of a quarter of the age, capped at a minute: about 70 tries in an hour
    assert 40 < tries < 100
    assert statuses(world) == [SmsStatus.FAILED]
    assert refunds(world) == [f"refund: {N1} undeliverable (expired)"]
    assert world.balance(U) == 100


# --- attempts count the failures in a row of the current try ----------------


async def test_redrives_and_lapsed_leases_do_not_add_up_to_parking() -> None:
    world = World()
    await accept(world, (N1,))
    for _ in range(50):  # published, lost, redriven: again and again
        assert await world.relay.relay_once() == RelayReport(1, 0, 0)
        world.clock.advance(timedelta(minutes=2))
        assert await world.relay.redrive(timedelta(minutes=1), list(MessageType)) == 1
        assert event_row(world).event.attempts == 0  # type: ignore[attr-defined]
    world.bus.fail_with = ConnectionError("one blip")
    assert await world.relay.relay_once() == RelayReport(0, 1, 0)
    row = event_row(world)
    assert (row.status, row.event.attempts) == ("pending", 1)  # type: ignore[attr-defined]


# --- a lost delivery is noticed within its lease ----------------------------


class Killed(BaseException):
    pass


async def test_a_delivery_lost_mid_send_is_redriven_once_its_lease_lapses() -> None:
    world = World(validity=DeliveryPolicy(lease=timedelta(seconds=30)))
    await accept(world, (N1,))
    await world.relay.relay_once()

    def die(sms: OutgoingSms) -> str:
        raise Killed()

    world.a.behaviour = die
    with pytest.raises(Killed):
        await deliver_published(world)
    assert statuses(world) == [SmsStatus.SENDING]
    world.a.behaviour = lambda sms: "id"
    world.clock.advance(timedelta(seconds=29))
    assert await world.relay.redrive(timedelta(hours=1)) == 0  # its lease still runs
    world.clock.advance(timedelta(seconds=2))
    assert await world.relay.redrive(timedelta(hours=1)) == 1
    await relay_until_quiet(world)
    assert [r.done for r in await deliver_published(world)] == [1]
    assert statuses(world) == [SmsStatus.DONE]


async def test_a_duplicate_of_a_delivery_in_progress_claims_nothing() -> None:
    world = World()
    await accept(world, (N1,))
    await world.relay.relay_once()
    [delivery] = world.bus.published
    async with world.db.uow() as uow:  # a worker claimed it and is sending
        await uow.messages.claim_many([delivery.sms_identifier], world.clock.now(),
                                      world.validity.stale_before(world.clock.now()))
        await uow.commit()
    assert await world.deliverer.deliver(delivery) == DeliveryCounts(0, 0, 1)
    assert world.a.calls == 0


# --- customers read a reason code; the details go to the logs ---------------


class LeakyOperator(ScriptedOperator):
    async def send(self, sms: OutgoingSms) -> str:
        self.calls += 1
        raise OperatorError(self.name, ErrorClass.PERMANENT,
                            "HTTP 422 from https://smsc-7.internal.example:8443/v2/send: "
                            "account acme-prod rejected")


async def test_a_refund_says_rejected_and_the_operator_text_goes_to_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    world.deliverer.operators = [LeakyOperator("A")]
    await accept(world, (N1,))
    await world.relay.relay_once()
    with caplog.at_level(logging.WARNING, logger="smsgw.deliver"):
        await deliver_published(world)
    assert refunds(world) == [f"refund: {N1} undeliverable (rejected)"]
    [record] = [r for r in caplog.records if r.getMessage() == "recipient failed"]
    assert "smsc-7.internal.example" in record.errors  # type: ignore[attr-defined]


def test_the_policy_waits_a_quarter_of_the_age_capped_and_never_past_validity() -> None:
    policy = DeliveryPolicy(validity=timedelta(hours=1))
    accepted = datetime(2026, 1, 1, tzinfo=UTC)
    wait = [policy.retry_at(accepted, accepted + age) - (accepted + age)
            for age in (timedelta(0), timedelta(seconds=20), timedelta(minutes=10))]
    assert wait == [timedelta(seconds=1), timedelta(seconds=5), timedelta(seconds=60)]
    almost = accepted + timedelta(minutes=59, seconds=50)
    assert policy.retry_at(accepted, almost) == accepted + timedelta(hours=1)
    assert not policy.expired(accepted, almost)
    assert policy.expired(accepted, accepted + timedelta(hours=1))
    assert not policy.expired(None, accepted + timedelta(days=30))  # age unknown
    with pytest.raises(ValueError, match="positive"):
        DeliveryPolicy(validity=timedelta(0))


# --- a stop hands work back: nothing waits out a lease after a SIGTERM ---------------


async def test_a_cancelled_delivery_settles_what_was_answered_and_hands_back_the_rest() -> None:
    world = World()
    await accept(world, (N1, N2))
    await world.relay.relay_once()
    [delivery] = world.bus.published
    hold = asyncio.Event()
    called = asyncio.Event()

    class Slow(ScriptedOperator):
        async def send(self, sms: OutgoingSms) -> str:
            if sms.recipient == N2:
                called.set()
                await hold.wait()  # never answers before the stop
            return await super().send(sms)

    world.deliverer.operators = [Slow("A")]
    task = asyncio.create_task(world.deliverer.deliver(delivery))
    await called.wait()
    await asyncio.sleep(0)  # N1's answer is in
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {m.recipient: m.status for m in world.messages()} == {
        N1: SmsStatus.DONE, N2: SmsStatus.PENDING,
    }
    row = event_row(world)
    assert (row.status, row.run_at) == ("pending", world.clock.now())  # type: ignore[attr-defined]
    assert refunds(world) == []
