"""The outbox relay: publishing, priority, backoff, leases, redrive and parking.

On the in-memory fakes (tests/unit/core_world.py); assertions are on state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from core_world import (
    N1,
    N2,
    World,
    fund,
    outbox_rows,
    send,
)

from smsgw_core.backoff import Backoff
from smsgw_core.fairness import FairShare, Headroom, Waiting
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.outbox import RetryPolicy, UndecodablePayload
from smsgw_core.services.relay import OutboxRelay, RelayReport
from smsgw_core.testing import InMemoryDatabase, RecordingBus
from smsgw_core.testing.repositories import InMemoryOutbox
from smsgw_core.testing.uow import InMemoryUnitOfWork

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
    policy = RetryPolicy(Backoff(first=1, ceiling=10))
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


async def test_an_undecodable_event_is_parked_at_once_and_the_rest_published(
    world: World,
) -> None:
    await fund(world, 10)
    good = await send(world)
    await send(world)
    [_, bad] = sorted(world.db.state.outbox)
    world.db.state.outbox[bad].event = replace(
        world.db.state.outbox[bad].event,
        content=UndecodablePayload("not a delivery: Object missing required field `user_id`"),
    )
    report = await world.relay.relay_once()
    assert report == RelayReport(published=1, retried=0, parked=1)
    assert [d.sms_identifier for d in world.bus.published] == [good.sms_identifier]
    row = world.db.state.outbox[bad]
    assert row.status == "parked"
    assert row.last_error is not None and "undecodable payload" in row.last_error


# --- the normal lane's fair order ---------------------------------------------------------


def fair_lane(world: World, ahead: int = 0, batch: int = 100) -> OutboxRelay:
    return OutboxRelay(world.db.uow, world.bus, world.clock, world.policy, world.validity,
                       batch_size=batch, lane=MessageType.NORMAL, fair=FairShare(),
                       headroom=Headroom(ahead, floor=ahead) if ahead else None)


async def test_the_normal_lane_goes_fair_across_customers_not_oldest_first(
    world: World,
) -> None:
    heavy, light = 1, 2
    await fund(world, 10_000, heavy)
    await fund(world, 10_000, light)
    for _ in range(30):
        await send(world, user=heavy)
    late = [await send(world, user=light, text=f"light {n}") for n in range(3)]
    relay = fair_lane(world, batch=6)
    await relay.relay_once()
    published = [d.sms_identifier for d in world.bus.published]
    assert len(published) == 6
    # Queued after 30 of the heavy customer's, the light one's 3 go in the first pass.
    assert {a.sms_identifier for a in late} <= set(published)
    while (await relay.relay_once()).published:
        pass
    assert len(world.bus.published) == 33  # and then everything else: nothing is left


async def test_the_queue_is_kept_short_and_refilled_as_it_drains(world: World) -> None:
    await fund(world, 10_000)
    for _ in range(25):
        await send(world)
    relay = fair_lane(world, ahead=10)
    assert (await relay.relay_once()).published == 10
    assert await relay.relay_once() == RelayReport(0, 0, 0, throttled=True)
    world.bus.taken[MessageType.NORMAL] += 4  # workers took four
    assert (await relay.relay_once()).published == 4
    assert (await relay.relay_once()).throttled
    assert len(world.bus.published) == 14
    assert sum(1 for row in outbox_rows(world) if row.status == "pending") == 11


class RivalOutbox(InMemoryOutbox):
    """An outbox where another relay claims whatever this one reads as waiting,
    between its read and its claim (on MariaDB, SKIP LOCKED then skips them)."""

    async def waiting(self, now: datetime, *args: Any, **kwargs: Any) -> list[Waiting]:
        seen = await super().waiting(now, *args, **kwargs)
        await self.claim([w.event_id for w in seen], now, now + timedelta(minutes=1))
        return seen


class RivalUnitOfWork(InMemoryUnitOfWork):
    def __init__(self, db: InMemoryDatabase) -> None:
        super().__init__(db)
        self.outbox = RivalOutbox(self)


async def test_a_pick_another_relay_claimed_first_is_contended_not_idle(world: World) -> None:
    await fund(world, 10_000)
    await send(world)
    raced = OutboxRelay(lambda: RivalUnitOfWork(world.db), world.bus, world.clock,
                        world.policy, world.validity, lane=MessageType.NORMAL, fair=FairShare())
    assert await raced.relay_once() == RelayReport(0, 0, 0, contended=True)
    # Nothing waiting at all is idle, not contended.
    assert await fair_lane(world).relay_once() == RelayReport(0, 0, 0)


class SlowBus(RecordingBus):
    """A bus whose depth takes a moment to read, as a broker's does."""

    async def backlog(self) -> Mapping[MessageType, int]:
        depth = await super().backlog()
        await asyncio.sleep(0)  # the answer is on its way back: others go on meanwhile
        return depth


async def test_a_lanes_relays_in_one_process_refill_its_queue_in_turns(world: World) -> None:
    await fund(world, 10_000)
    for _ in range(25):
        await send(world)
    bus = SlowBus()
    shared = {"fair": FairShare(), "headroom": Headroom(10, floor=10), "turn": asyncio.Lock()}
    relays = [OutboxRelay(world.db.uow, bus, world.clock, world.policy, world.validity,
                          lane=MessageType.NORMAL, **shared) for _ in range(2)]
    await asyncio.gather(*(relay.relay_once() for relay in relays))
    # One fills the queue to its headroom; the other then finds it full. Both
    # reading its depth at once would have filled it twice over.
    assert len(bus.published) == 10


async def test_express_is_never_held_back_by_the_normal_queue(world: World) -> None:
    await fund(world, 10_000)
    for _ in range(5):
        await send(world)
    await fair_lane(world, ahead=5).relay_once()  # the normal queue is full
    otp = await send(world, type=MessageType.EXPRESS)
    express = OutboxRelay(world.db.uow, world.bus, world.clock, world.policy, world.validity,
                          lane=MessageType.EXPRESS)
    assert (await express.relay_once()).published == 1
    assert world.bus.published[-1].sms_identifier == otp.sms_identifier


async def test_a_large_sms_goes_as_parts_each_delivered_on_its_own(world: World) -> None:
    await fund(world, 10_000)
    numbers = tuple(f"+98912{n:07d}" for n in range(45))
    accepted = await send(world, numbers)
    relay = OutboxRelay(world.db.uow, world.bus, world.clock, world.policy, world.validity,
                        lane=MessageType.NORMAL, chunk=20, fair=FairShare())
    assert (await relay.relay_once()).published == 1  # one event ...
    parts = world.bus.published
    assert [len(p.recipients) for p in parts] == [20, 20, 5]  # ... three deliveries
    assert {p.sms_identifier for p in parts} == {accepted.sms_identifier}
    counts = [await world.deliverer.deliver(p) for p in (parts[1], parts[1], parts[0])]
    assert [(c.done, c.skipped) for c in counts] == [(20, 0), (0, 20), (20, 0)]
    assert sorted(m.recipient for m in world.messages() if m.status is SmsStatus.PENDING) == \
        sorted(numbers[40:])  # the last part's, untouched by the others
    await world.deliverer.deliver(parts[2])
    assert all(m.status is SmsStatus.DONE for m in world.messages())


async def test_parts_of_one_sms_in_one_claim_group_each_get_their_own(world: World) -> None:
    await fund(world, 10_000)
    numbers = tuple(f"+98912{n:07d}" for n in range(6))
    await send(world, numbers)
    relay = OutboxRelay(world.db.uow, world.bus, world.clock, world.policy, world.validity,
                        lane=MessageType.NORMAL, chunk=2)
    await relay.relay_once()
    counts = await asyncio.gather(*(world.deliverer.deliver(p) for p in world.bus.published))
    assert [c.done for c in counts] == [2, 2, 2]
    assert len(world.a.sent) == 6  # each recipient sent once
