"""OutboxRepository: express first, leased claims, backoff, deferral, parking and redrive."""

from __future__ import annotations

from datetime import timedelta

from contract_helpers import T0, at, claim, delivery, finish, messages

from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.outbox import SMS_SEND
from smsgw_core.ports import Backlog, UnitOfWorkFactory

LEASE = timedelta(seconds=30)


async def _add(uow_factory: UnitOfWorkFactory, *sms: str, express: tuple[str, ...] = ()) -> None:
    async with uow_factory() as uow:
        for name in sms:
            kind = MessageType.EXPRESS if name in express else MessageType.NORMAL
            await uow.outbox.add([delivery(name, type=kind)], T0)
        await uow.commit()


async def _claim(uow_factory: UnitOfWorkFactory, now_s: float, limit: int = 100) -> list[str]:
    """Claim what is due at T0 + now_s; the lease runs LEASE from then."""
    now = at(now_s)
    async with uow_factory() as uow:
        events = await uow.outbox.claim_due(now, limit, now + LEASE)
        await uow.commit()
    return [e.aggregate_id for e in events]


async def test_claimed_events_carry_the_delivery(uow_factory: UnitOfWorkFactory) -> None:
    sent = delivery("s1", "+989120000001", "+989120000002", type=MessageType.EXPRESS)
    async with uow_factory() as uow:
        await uow.outbox.add([sent], T0)
        await uow.commit()
    async with uow_factory() as uow:
        [event] = await uow.outbox.claim_due(T0, 10, T0 + LEASE)
    assert event.delivery() == sent
    assert (event.aggregate_id, event.event_type, event.priority) == ("s1", SMS_SEND, 10)
    assert (event.attempts, event.created_at) == (1, T0)


async def test_express_first_then_oldest_first(uow_factory: UnitOfWorkFactory) -> None:
    await _add(uow_factory, "n1", "e1", "n2", "e2", "n3", express=("e1", "e2"))
    assert await _claim(uow_factory, 0, limit=3) == ["e1", "e2", "n1"]
    assert await _claim(uow_factory, 0, limit=3) == ["n2", "n3"]
    assert await _claim(uow_factory, 0) == []


async def test_an_event_is_not_due_before_it_was_added(uow_factory: UnitOfWorkFactory) -> None:
    await _add(uow_factory, "s1")
    assert await _claim(uow_factory, -0.5) == []
    assert await _claim(uow_factory, 0) == ["s1"]


async def test_the_lease_hides_a_claimed_event_until_it_lapses(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1")
    assert await _claim(uow_factory, 0) == ["s1"]
    assert await _claim(uow_factory, 29.9) == []
    async with uow_factory() as uow:
        [event] = await uow.outbox.claim_due(at(30), 10, at(30) + LEASE)
    assert event.attempts == 2


async def test_retry_later_waits_for_a_sub_second_backoff(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1")
    async with uow_factory() as uow:
        [event] = await uow.outbox.claim_due(T0, 10, T0 + LEASE)
        await uow.outbox.retry_later(event.id, "bus down", at(0.5))
        await uow.commit()
    assert await _claim(uow_factory, 0.499) == []
    async with uow_factory() as uow:
        [again] = await uow.outbox.claim_due(at(0.5), 10, at(0.5) + LEASE)
    assert (again.id, again.attempts) == (event.id, 2)


async def test_published_and_parked_events_are_not_claimed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1", "s2", "s3")
    async with uow_factory() as uow:
        events = await uow.outbox.claim_due(T0, 10, T0 + LEASE)
        ids = {e.aggregate_id: e.id for e in events}
        await uow.outbox.mark_published([ids["s1"]], at(1))
        await uow.outbox.mark_published([], at(1))
        await uow.outbox.park(ids["s2"], "poison", at(1))
        await uow.commit()
    assert await _claim(uow_factory, 3600) == ["s3"]
    assert await _claim(uow_factory, 7200) == ["s3"]


async def test_redrive_requeues_published_events_whose_delivery_was_lost(
    uow_factory: UnitOfWorkFactory,
) -> None:
    numbers = {
        "done": ("+989120000001",),
        "sending": ("+989120000002", "+989120000003"),  # one failed, one mid-send since at(2)
        "waiting": ("+989120000004",),  # published, never taken
        "express": ("+989120000005",),  # published, never taken, express lane
        "unpublished": ("+989120000009",),
        "parked": ("+989120000009",),
    }
    async with uow_factory() as uow:
        for sms, recipients in numbers.items():
            await uow.messages.add(messages(sms, 1, *recipients))
            kind = MessageType.EXPRESS if sms == "express" else MessageType.NORMAL
            await uow.outbox.add([delivery(sms, *recipients, type=kind)], T0)
        events = {e.aggregate_id: e.id for e in await uow.outbox.claim_due(T0, 10, at(30))}
        published = [events[s] for s in ("done", "sending", "waiting", "express")]
        await uow.outbox.mark_published(published, at(1))
        await uow.outbox.park(events["parked"], "poison", at(1))
        await uow.messages.claim_many(["done", "sending"], at(2))
        await finish(uow.messages, "done", "+989120000001", SmsStatus.DONE, "op-a", at(2))
        await finish(uow.messages, "sending", "+989120000002", SmsStatus.FAILED, "", at(2))
        await uow.commit()

    async def redrive(published_before: float, sending_before: float,
                      quiet: tuple[MessageType, ...] = (), limit: int = 1000) -> int:
        async with uow_factory() as uow:
            count = await uow.outbox.redrive(at(published_before), at(sending_before), at(10),
                                             [k.priority for k in quiet], limit)
            await uow.commit()
        return count

    # the SENDING recipient's lease runs while at(2) is not before `sending_before`;
    # PENDING ones count only in a quiet lane, published before `published_before`
    assert await redrive(3600, 2, ()) == 0
    assert await redrive(0.999, 2, tuple(MessageType)) == 0
    assert await redrive(1, 2, (MessageType.NORMAL,)) == 1
    assert await _claim(uow_factory, 10) == ["waiting"]
    assert await redrive(1, 2.001, ()) == 1
    assert await _claim(uow_factory, 10) == ["sending"]
    assert await redrive(1, 2, tuple(MessageType), limit=0) == 0
    assert await redrive(1, 2, tuple(MessageType)) == 1
    assert await _claim(uow_factory, 10) == ["express"]
    # requeued ones are pending now, the finished and the parked never were candidates
    assert await redrive(3600, 3600, tuple(MessageType)) == 0


async def test_attempts_start_over_when_published_redriven_or_deferred(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1")
    async with uow_factory() as uow:
        [event] = await uow.outbox.claim_due(T0, 10, T0 + LEASE)
        await uow.outbox.retry_later(event.id, "bus down", at(1))
        [event] = await uow.outbox.claim_due(at(1), 10, at(1) + LEASE)
        assert event.attempts == 2
        await uow.outbox.mark_published([event.id], at(2))
        await uow.outbox.defer({"s1": at(5), "unknown": at(5)}, at(3))
        await uow.commit()
    assert await _claim(uow_factory, 4.999) == []
    async with uow_factory() as uow:
        [again] = await uow.outbox.claim_due(at(5), 10, at(5) + LEASE)
    assert again.attempts == 1  # this try's first


async def test_marking_published_under_a_lease_spares_an_event_deferred_meanwhile(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, "s1", "s2")
    async with uow_factory() as uow:
        events = await uow.outbox.claim_due(T0, 10, T0 + LEASE)
        await uow.commit()
    async with uow_factory() as uow:  # a fast worker defers s1 before the relay's mark
        await uow.outbox.defer({"s1": at(1)}, at(0.5))
        await uow.commit()
    async with uow_factory() as uow:
        await uow.outbox.mark_published([e.id for e in events], at(0.6), T0 + LEASE)
        await uow.commit()
    assert await _claim(uow_factory, 1) == ["s1"]  # s2 was published, s1 is due again


async def test_parked_events_are_listed_and_requeued(uow_factory: UnitOfWorkFactory) -> None:
    await _add(uow_factory, "s1", "s2", "s3")
    async with uow_factory() as uow:
        ids = {e.aggregate_id: e.id for e in await uow.outbox.claim_due(T0, 10, T0 + LEASE)}
        await uow.outbox.park(ids["s1"], "undecodable payload: KeyError", at(1))
        await uow.outbox.park(ids["s2"], "undecodable payload: TypeError", at(1))
        await uow.outbox.defer({"s1": at(2)}, at(2))  # a parked event stays parked
        await uow.commit()
    async with uow_factory() as uow:
        parked = await uow.outbox.parked(10)
        assert [(p.sms_identifier, p.attempts, p.last_error) for p in parked] == [
            ("s1", 1, "undecodable payload: KeyError"), ("s2", 1, "undecodable payload: TypeError"),
        ]
        assert parked[0].created_at == T0
        assert [p.sms_identifier for p in await uow.outbox.parked(1)] == ["s1"]
        assert await uow.outbox.requeue([ids["s2"], ids["s3"]], at(3)) == 1  # s3 not parked
        assert await uow.outbox.requeue([], at(3)) == 0
        await uow.commit()
    async with uow_factory() as uow:
        [requeued] = await uow.outbox.claim_due(at(3), 10, at(3) + LEASE)
        assert (requeued.aggregate_id, requeued.attempts) == ("s2", 1)
        assert await uow.outbox.requeue(None, at(4)) == 1
        await uow.commit()
    assert await _claim(uow_factory, 4) == ["s1"]


async def test_a_lane_claims_only_its_own_priority(uow_factory: UnitOfWorkFactory) -> None:
    await _add(uow_factory, "n1", "e1", "n2", "e2", express=("e1", "e2"))
    async with uow_factory() as uow:
        normal = await uow.outbox.claim_due(T0, 10, T0 + LEASE, priority=0)
        express = await uow.outbox.claim_due(T0, 10, T0 + LEASE, priority=10)
        await uow.commit()
    assert [e.aggregate_id for e in normal] == ["n1", "n2"]
    assert [e.aggregate_id for e in express] == ["e1", "e2"]


async def test_purge_deletes_finished_published_events_only(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        for sms in ("finished", "unfinished", "unpublished", "parked", "finished_late"):
            await uow.messages.add(messages(sms, 1, "+989120000001"))
            await uow.outbox.add([delivery(sms, "+989120000001")], T0)
        events = {e.aggregate_id: e.id for e in await uow.outbox.claim_due(T0, 10, at(30))}
        await uow.outbox.mark_published(
            [events["finished"], events["unfinished"]], at(1))
        await uow.outbox.mark_published([events["finished_late"]], at(50))
        await uow.outbox.park(events["parked"], "poison", at(1))
        for sms in ("finished", "parked", "unpublished", "finished_late"):
            await claim(uow.messages, sms, at(2))
            await finish(uow.messages, sms, "+989120000001", SmsStatus.DONE, "A", at(2))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.purge(published_before=at(10), limit=100) == 1
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.purge(published_before=at(10), limit=100) == 0
        assert await uow.outbox.purge(published_before=at(60), limit=100) == 1
        await uow.commit()
    # the parked and unpublished events are still there: one claimable, one parked
    assert await _claim(uow_factory, 3600) == ["unpublished"]


async def test_backlog_counts_due_events_per_priority(uow_factory: UnitOfWorkFactory) -> None:
    await _add(uow_factory, "n1", "e1", "n2", express=("e1",))
    async with uow_factory() as uow:
        await uow.outbox.add([delivery("late")], at(5))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.backlog(at(1)) == [Backlog(10, 1, T0), Backlog(0, 2, T0)]
        assert await uow.outbox.backlog(at(-1)) == []
    assert await _claim(uow_factory, 1, limit=1) == ["e1"]  # leased: no longer due
    async with uow_factory() as uow:
        assert await uow.outbox.backlog(at(6)) == [Backlog(0, 3, T0)]


async def test_backlog_counts_events_failing_to_publish(uow_factory: UnitOfWorkFactory) -> None:
    await _add(uow_factory, "n1", "n2")
    async with uow_factory() as uow:
        for second in (0, 1):  # n1 fails twice in a row; n2 once
            for event in await uow.outbox.claim_due(at(second), 10, at(second) + LEASE):
                if event.aggregate_id == "n1" or second == 0:
                    await uow.outbox.retry_later(event.id, "bus down", at(second + 1))
                else:
                    await uow.outbox.mark_published([event.id], at(second))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.backlog(at(1.5)) == [Backlog(0, 0, None, failing=1)]
