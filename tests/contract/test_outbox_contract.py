"""OutboxRepository: express first, leased claims, backoff, parking and redrive."""

from __future__ import annotations

from datetime import timedelta

from contract_helpers import T0, at, delivery, messages

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


async def test_redrive_requeues_stalled_published_events(uow_factory: UnitOfWorkFactory) -> None:
    recipients = {"done": ("+989120000001",), "stalled": ("+989120000002", "+989120000003")}
    async with uow_factory() as uow:
        for sms, numbers in recipients.items():
            await uow.messages.add(messages(sms, 1, *numbers))
            await uow.outbox.add([delivery(sms, *numbers)], T0)
        await uow.outbox.add([delivery("unpublished")], T0)
        await uow.outbox.add([delivery("parked")], T0)
        await uow.messages.add(messages("unpublished", 1, "+989120000009"))
        await uow.messages.add(messages("parked", 1, "+989120000009"))
        events = {e.aggregate_id: e.id for e in await uow.outbox.claim_due(T0, 10, at(30))}
        await uow.outbox.mark_published([events["done"], events["stalled"]], at(1))
        await uow.outbox.park(events["parked"], "poison", at(1))
        await uow.messages.claim("done", at(2))
        await uow.messages.finish("done", "+989120000001", SmsStatus.DONE, "op-a", at(2))
        await uow.messages.claim("stalled", at(2))
        await uow.messages.finish("stalled", "+989120000002", SmsStatus.FAILED, "", at(2))
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.outbox.redrive(published_before=at(0.999), now=at(10)) == 0
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.redrive(published_before=at(1), now=at(10)) == 1
        await uow.commit()
    assert await _claim(uow_factory, 10) == ["stalled"]
    async with uow_factory() as uow:
        assert await uow.outbox.redrive(published_before=at(3600), now=at(3600)) == 0


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
            await uow.messages.claim(sms, at(2))
            await uow.messages.finish(sms, "+989120000001", SmsStatus.DONE, "A", at(2))
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
