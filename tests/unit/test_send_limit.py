"""Per-customer send limits: a token bucket of recipients, refused sends write nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw_core.customers import Customer
from smsgw_core.errors import InsufficientBalance, RateLimited
from smsgw_core.pricing import Tariff
from smsgw_core.send_limits import Bucket, Rate
from smsgw_core.services.accounts import Accounts, TopUp
from smsgw_core.services.customers import Customers
from smsgw_core.services.send_limit import LimitedSender, SendLimits
from smsgw_core.services.send_sms import SendSms, SmsSender
from smsgw_core.testing import FakeClock, FakeTicks, InMemoryDatabase, SequentialIds


def send(customer: int, recipients: int = 1) -> SendSms:
    return SendSms(customer, "hi", tuple(f"+4479{n:08d}" for n in range(recipients)))


@pytest.mark.parametrize(("text", "rate"), [
    ("200/s,burst=1000", Rate(200, 1000)), ("200/s", Rate(200, 200)),
    (" 5 / s , burst = 7 ", Rate(5, 7)),
])
def test_a_rate_is_read_from_its_text(text: str, rate: Rate) -> None:
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["", "200", "200/m", "0/s", "1/s,burst=0", "-1/s",
                                  "200/s,burst=", "2/s;burst=3", "1.5/s", "9999999/s"])
def test_anything_else_is_not_a_rate(text: str) -> None:
    with pytest.raises(ValueError):
        Rate.parse(text)


def test_a_customers_own_rate_keeps_the_defaults_burst_window() -> None:
    assert Rate(200, 1000).at(10) == Rate(10, 50)
    assert Rate(200, 1000).at(1) == Rate(1, 5)
    assert Rate(1000, 1).at(1) == Rate(1, 1)  # never a burst of 0


@given(rate=st.builds(Rate, st.integers(1, 1000), st.integers(1, 5000)),
       sends=st.lists(st.tuples(st.integers(1, 1000), st.floats(0, 2)), max_size=60))
def test_a_bucket_never_lets_more_through_than_burst_plus_rate_times_time(
    rate: Rate, sends: list[tuple[int, float]],
) -> None:
    now, taken, bucket = 0.0, 0, Bucket(rate, 0.0)
    for recipients, pause in sends:
        now += pause
        if bucket.take(rate, recipients, now) == 0.0:
            taken += recipients
            # Taken only with the bucket holding min(n, burst): what went through is
            # at most the burst, the refill, and this one send's excess over the burst.
            assert taken - max(0, recipients - rate.burst) <= rate.burst + rate.per_s * now + 1e-6


def test_a_refused_take_says_when_it_would_go() -> None:
    rate, bucket = Rate(10, 20), Bucket(Rate(10, 20), 0.0)
    assert bucket.take(rate, 20, 0.0) == 0.0
    assert bucket.take(rate, 5, 0.0) == pytest.approx(0.5)
    assert bucket.take(rate, 5, 0.5) == 0.0
    # Larger than the burst: goes once the bucket is full, and leaves it in debt.
    assert bucket.take(rate, 100, 0.5) == pytest.approx(2.0)
    assert bucket.take(rate, 100, 2.5) == 0.0
    assert bucket.take(rate, 1, 2.5) == pytest.approx(8.1)


class World:
    def __init__(self, default: Rate | None) -> None:
        self.db, self.clock, self.ticks = InMemoryDatabase(), FakeClock(), FakeTicks()
        self.accounts = Accounts(self.db.uow, self.clock, SequentialIds())
        self.limits = SendLimits(self.db.uow, self.ticks, default)
        self.sender = LimitedSender(self.limits, SmsSender(
            self.db.uow, self.clock, SequentialIds(), Tariff()))

    async def fund(self, *customers: int) -> None:
        for customer in customers:
            await self.accounts.top_up(TopUp(customer, 100_000))

    async def written(self) -> tuple[int, int]:
        return len(self.db.state.outbox), sum(self.db.state.balances.values())


async def test_over_the_limit_is_refused_with_when_and_writes_nothing() -> None:
    world = World(Rate(10, 20))
    await world.fund(1, 2)
    await world.sender.send(send(1, 15))
    before = await world.written()
    with pytest.raises(RateLimited) as refused:
        await world.sender.send(send(1, 10))
    assert refused.value.retry_after_s == 1  # 5 missing at 10/s: half a second, rounded up
    assert str(refused.value) == ("customer 1 is over its send limit (10 recipients/s, "
                                  "burst 20); retry in 1 s")
    assert await world.written() == before
    # Another customer's bucket is its own.
    await world.sender.send(send(2, 20))
    world.ticks.advance(0.5)
    await world.sender.send(send(1, 10))


async def test_a_send_refused_for_another_reason_does_not_count() -> None:
    world = World(Rate(10, 10))
    with pytest.raises(InsufficientBalance):
        await world.sender.send(send(3, 10))  # never topped up
    await world.fund(3)
    await world.sender.send(send(3, 10))  # the whole burst is still there


async def test_no_default_is_unlimited_and_a_customers_own_rate_applies_within_a_second(
) -> None:
    world = World(None)
    await world.fund(4)
    for _ in range(20):
        await world.sender.send(send(4, 1000))
    customers = Customers(world.db.uow, world.clock)
    await customers.set_limit(4, 100)
    await world.sender.send(send(4, 1000))  # the old reading (unlimited), for up to 1 s
    world.ticks.advance(1.0)
    await world.sender.send(send(4, 100))  # the new: a burst of one second's worth
    with pytest.raises(RateLimited):
        await world.sender.send(send(4, 1))
    await customers.set_limit(4, None)
    world.ticks.advance(1.0)
    await world.sender.send(send(4, 1000))


async def test_a_customers_own_rate_overrides_the_default() -> None:
    world = World(Rate(1000, 1000))
    await world.fund(5, 6)
    async with world.db.uow() as uow:
        await uow.customers.add(Customer(5, "slow", world.clock.now(), 2))
        await uow.commit()
    await world.sender.send(send(5, 2))  # 2/s, a burst of 2 (the default's one second)
    with pytest.raises(RateLimited):
        await world.sender.send(send(5, 1))
    await world.sender.send(send(6, 1000))
    assert await world.limits.rate(5) == Rate(2, 2)
    assert await world.limits.rate(6) == Rate(1000, 1000)


async def test_a_customers_rate_is_read_once_per_second() -> None:
    world = World(Rate(1000, 1000))
    await world.fund(7)
    opened = 0
    uow = world.db.uow

    def counted():  # type: ignore[no-untyped-def]
        nonlocal opened
        opened += 1
        return uow()

    limits = SendLimits(counted, world.ticks, Rate(1000, 1000))
    for _ in range(100):
        await limits.take(7, 1)
    assert opened == 1
    world.ticks.advance(1.0)
    await limits.take(7, 1)
    assert opened == 2


async def test_many_customers_cost_one_read_a_second_not_one_each() -> None:
    world = World(Rate(1000, 1000))
    opened = 0
    uow = world.db.uow

    def counted():  # type: ignore[no-untyped-def]
        nonlocal opened
        opened += 1
        return uow()

    limits = SendLimits(counted, world.ticks, Rate(1000, 1000))
    for customer in range(1, 500):
        await limits.take(customer, 1)
    assert opened == 1
