"""FairShare: deficit round robin across customers, weighted by recipients."""

from __future__ import annotations

import asyncio
from collections import Counter
from itertools import count

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw_core.fairness import FairGate, FairShare, Headroom, Waiting

ids = count(1)


def queue(customer: int, n: int, recipients: int = 1) -> list[Waiting]:
    return [Waiting(next(ids), customer, recipients) for _ in range(n)]


def test_light_customers_go_first_behind_a_heavy_backlog() -> None:
    heavy = queue(1, 1000)
    lights = [w for c in range(2, 12) for w in queue(c, 1)]
    picked = FairShare().pick(heavy + lights, 20)
    assert {w.customer_id for w in picked} >= set(range(2, 12))
    assert len(picked) == 20


def test_a_lone_sender_gets_all_the_room() -> None:
    assert len(FairShare().pick(queue(1, 500), 64)) == 64


def test_shares_are_by_recipients_not_by_requests() -> None:
    fair = FairShare()
    singles, bulk = queue(1, 10_000), queue(2, 100, recipients=100)
    recipients: Counter[int] = Counter()
    for _ in range(50):
        # What the outbox would show: each customer's oldest 30.
        for w in fair.pick(singles[:30] + bulk[:30], 30):
            recipients[w.customer_id] += w.recipients
            (singles if w.customer_id == 1 else bulk).remove(w)
    share = recipients[1] / (recipients[1] + recipients[2])
    assert 0.4 <= share <= 0.6, recipients


def test_an_sms_larger_than_the_quantum_goes_once_saved_up_for() -> None:
    fair = FairShare()
    big = queue(1, 1, recipients=1000)
    assert fair.pick(big + queue(2, 5), 100)[0].customer_id in (1, 2)
    assert big[0] in fair.pick(big, 1)  # alone: goes at once, whatever its size


@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 300)), max_size=80),
       st.integers(1, 50))
def test_a_pick_is_work_conserving_and_keeps_each_customers_order(
    sms: list[tuple[int, int]], room: int,
) -> None:
    waiting = [Waiting(i, c, r) for i, (c, r) in enumerate(sms)]
    picked = FairShare(quantum=50).pick(waiting, room)
    assert len(picked) == min(room, len(waiting))
    assert len(set(picked)) == len(picked)
    for customer in {c for c, _ in sms}:
        mine = [w.event_id for w in picked if w.customer_id == customer]
        theirs = [w.event_id for w in waiting if w.customer_id == customer]
        assert mine == theirs[:len(mine)]  # a prefix, in order


def test_the_headroom_grows_when_the_queue_ran_dry_and_shrinks_when_it_did_not_drain() -> None:
    headroom = Headroom(ceiling=100, floor=4)
    assert headroom.room(0) == 4
    headroom.published(4, 4)  # filled: more was waiting
    assert headroom.room(0) == 8  # ran dry before the next refill: twice as much
    headroom.published(8, 8)
    assert headroom.room(0) == 16
    headroom.published(16, 16)
    for _ in range(10):
        headroom.room(0)
        headroom.published(100, 100)
    assert headroom.target == 100  # never past the ceiling
    for _ in range(100):
        assert headroom.room(90) >= 0  # the workers barely take anything
    assert headroom.target == 4
    headroom.published(0, 4)  # nothing was waiting: an empty queue then says nothing
    assert headroom.room(0) == 4


async def test_the_gate_lets_customers_in_by_turns_and_survives_cancellation() -> None:
    gate, order = FairGate(1), []
    release = asyncio.Event()

    async def call(customer: int, n: int) -> None:
        async with gate.slot(customer):
            order.append((customer, n))
            await release.wait()

    first = asyncio.ensure_future(call(1, 0))
    await asyncio.sleep(0)
    heavy = [asyncio.ensure_future(call(1, n)) for n in range(1, 6)]
    lost = asyncio.ensure_future(call(3, 0))
    light = asyncio.ensure_future(call(2, 0))
    await asyncio.sleep(0)
    lost.cancel()  # a waiter that leaves takes no slot with it
    release.set()
    await asyncio.gather(first, *heavy, light, return_exceptions=False)
    with pytest.raises(asyncio.CancelledError):
        await lost
    # The light customer's one call goes second, not behind the heavy one's five.
    assert order == [(1, 0), (1, 1), (2, 0), (1, 2), (1, 3), (1, 4), (1, 5)]
    async with gate.slot(4):  # every slot came back
        pass


def test_room_can_count_what_each_sms_takes_of_it() -> None:
    fair = FairShare()
    bulk, single = queue(1, 5, recipients=100), queue(2, 5)
    parts = fair.pick(bulk + single, 10, size=lambda w: -(-w.recipients // 20))
    # A bulk SMS is 5 parts of the queue: room for two of them, or one and singles.
    assert sum(-(-w.recipients // 20) for w in parts) <= 10
    assert {w.customer_id for w in parts} == {1, 2}
    assert FairShare().pick(queue(1, 1, recipients=1000), 10, size=lambda w: 50) != []


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 120)), max_size=40),
       st.integers(1, 30), st.integers(1, 25))
def test_a_pick_by_size_ends_and_fits_its_room(
    sms: list[tuple[int, int]], room: int, part: int,
) -> None:
    waiting = [Waiting(i, c, r) for i, (c, r) in enumerate(sms)]

    def size(w: Waiting) -> int:
        return -(-w.recipients // part)

    picked = FairShare().pick(waiting, room, size=size)
    if waiting:
        assert picked  # the first always goes, whatever its size
    assert sum(size(w) for w in picked[1:]) < room or len(picked) <= 1
