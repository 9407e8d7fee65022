"""PacedOperator: an operator's cap, reserved a batch at a time from a shared schedule."""

from __future__ import annotations

import asyncio

import pytest

from smsgw_core.operators import OperatorError, OutgoingSms
from smsgw_core.services.pacing import PacedOperator
from smsgw_core.testing import FakeTicks, InMemoryCapacity, ScriptedOperator


class Sleeper:
    """asyncio.sleep on FakeTicks: sleeping moves the clock."""

    def __init__(self, ticks: FakeTicks) -> None:
        self.ticks = ticks

    async def __call__(self, seconds: float) -> None:
        self.ticks.advance(seconds)
        await asyncio.sleep(0)


def paced(capacity: InMemoryCapacity, ticks: FakeTicks, per_s: float = 100.0) -> PacedOperator:
    return PacedOperator(ScriptedOperator("A"), capacity, per_s, ticks,
                         Sleeper(ticks))


SMS = OutgoingSms("+989121234567", "hi", "ref")


async def test_sends_go_no_faster_than_the_cap_across_processes() -> None:
    ticks = FakeTicks()
    shared = InMemoryCapacity(ticks)
    first, second = paced(shared, ticks), paced(shared, ticks)  # two worker processes
    start = ticks()
    sent_at = []
    for _ in range(50):
        for operator in (first, second):
            await operator.send(SMS)
            sent_at.append(ticks() - start)
    # 100 sends at 100/s between the two: a second, less the last one's interval.
    assert sent_at[-1] == pytest.approx(0.99, abs=0.1)
    for t in range(len(sent_at)):
        window = [s for s in sent_at if sent_at[t] <= s < sent_at[t] + 0.1]
        assert len(window) <= 10 + 10  # the rate's 10 per 0.1 s, and a batch in hand
    assert shared.reservations == 10  # a batch of 0.1 s (10 sends) at a time


async def test_a_reservation_that_fails_is_a_transient_error() -> None:
    ticks = FakeTicks()
    shared = InMemoryCapacity(ticks)
    shared.fail_with = ConnectionError("database down")
    with pytest.raises(OperatorError) as refused:
        await paced(shared, ticks).send(SMS)
    assert refused.value.transient and "cannot reserve capacity" in str(refused.value)


async def test_a_slow_cap_spreads_sends_out() -> None:
    ticks = FakeTicks()
    operator = paced(InMemoryCapacity(ticks), ticks, per_s=2.0)
    start = ticks()
    for _ in range(5):
        await operator.send(SMS)
    assert ticks() - start == pytest.approx(2.0)  # at 0, 0.5, 1, 1.5 and 2 s
