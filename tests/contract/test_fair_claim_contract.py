"""OutboxRepository.waiting and claim: what the relay's fair order reads and leases."""

from __future__ import annotations

from datetime import timedelta

from contract_helpers import T0, at, delivery

from smsgw_core.fairness import Waiting
from smsgw_core.messages import MessageType
from smsgw_core.ports import UnitOfWorkFactory

LEASE = timedelta(seconds=30)
NORMAL, EXPRESS = MessageType.NORMAL.priority, MessageType.EXPRESS.priority


async def _add(uow_factory: UnitOfWorkFactory, customer_id: int, *names: str, recipients: int = 1,
               kind: MessageType = MessageType.NORMAL) -> None:
    numbers = [f"+98912{n:07d}" for n in range(recipients)]
    async with uow_factory() as uow:
        for name in names:
            await uow.outbox.add([delivery(name, *numbers, customer_id=customer_id, type=kind)], T0)
        await uow.commit()


async def _waiting(uow_factory: UnitOfWorkFactory, now_s: float = 0, per_customer: int = 10,
                   customers: int = 10, after: int = -1) -> list[Waiting]:
    async with uow_factory() as uow:
        return await uow.outbox.waiting(at(now_s), NORMAL, per_customer, customers, after)


async def test_each_customers_oldest_waiting_events_with_their_recipients(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, 7, "h1", "h2", "h3")
    await _add(uow_factory, 3, "l1", recipients=250)
    await _add(uow_factory, 9, "x1", kind=MessageType.EXPRESS)  # another lane
    await _add(uow_factory, 7, "h4")
    found = await _waiting(uow_factory, per_customer=3)
    assert sorted((w.customer_id, w.recipients) for w in found) == [(3, 250), (7, 1), (7, 1),
                                                                    (7, 1)]
    ids = [w.event_id for w in found if w.customer_id == 7]
    assert ids == sorted(ids)  # oldest first: h1, h2, h3 (not h4)
    async with uow_factory() as uow:
        claimed = await uow.outbox.claim(ids, T0, T0 + LEASE)
        await uow.commit()
    assert [e.aggregate_id for e in claimed] == ["h1", "h2", "h3"]
    # Leased: no longer due, so not waiting; h4 is next.
    again = await _waiting(uow_factory, per_customer=3)
    assert sorted((w.customer_id, w.recipients) for w in again) == [(3, 250), (7, 1)]


async def test_customers_are_taken_from_after_the_last_served_and_around(
    uow_factory: UnitOfWorkFactory,
) -> None:
    for customer in (1, 2, 3, 4, 5):
        await _add(uow_factory, customer, f"c{customer}")
    found = await _waiting(uow_factory, customers=3, after=3)
    assert sorted(w.customer_id for w in found) == [1, 4, 5]
    assert sorted(w.customer_id for w in await _waiting(uow_factory, customers=10, after=5)
                  ) == [1, 2, 3, 4, 5]


async def test_a_claim_leases_in_the_order_given_and_skips_what_is_not_due(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _add(uow_factory, 1, "a", "b", "c")
    ids = [w.event_id for w in await _waiting(uow_factory)]
    async with uow_factory() as uow:
        first = await uow.outbox.claim([ids[2], ids[0]], T0, T0 + LEASE)
        await uow.commit()
    assert [e.aggregate_id for e in first] == ["c", "a"]
    assert all(e.attempts == 1 for e in first)
    async with uow_factory() as uow:
        # a and c are leased (not due until the lease ends), b is.
        second = await uow.outbox.claim(ids, at(1), at(1) + LEASE)
        await uow.commit()
    assert [e.aggregate_id for e in second] == ["b"]
    async with uow_factory() as uow:
        after_lease = await uow.outbox.claim(ids, at(31), at(31) + LEASE)
        await uow.commit()
    assert [e.aggregate_id for e in after_lease] == ["a", "b", "c"]
    async with uow_factory() as uow:
        await uow.outbox.mark_published(ids, at(32))
        await uow.commit()
    assert await _waiting(uow_factory, now_s=100) == []
    async with uow_factory() as uow:
        assert await uow.outbox.claim(ids, at(100), at(100) + LEASE) == []
