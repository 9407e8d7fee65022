"""The one retry rule (smsgw_core.backoff): its properties, and each loop's figures."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw_adapters.inprocess import consumer as inprocess_consumer
from smsgw_adapters.rabbit import consumer as rabbit_consumer
from smsgw_adapters.resilience.breaker import OPERATOR_SEND
from smsgw_app.workers import RELAY_AFTER_ERROR
from smsgw_core.backoff import Backoff
from smsgw_core.outbox import PUBLISH, RetryPolicy
from smsgw_core.transactions import CONFLICTS

seconds = st.floats(min_value=0, max_value=3600, allow_nan=False)
failures = st.integers(min_value=-3, max_value=10_000)
draws = st.floats(min_value=0, max_value=1, exclude_max=True)


@st.composite
def backoffs(draw: st.DrawFn) -> Backoff:
    first, ceiling = sorted((draw(seconds), draw(seconds)))
    return Backoff(
        first=first, ceiling=ceiling,
        factor=draw(st.floats(min_value=1, max_value=100, allow_nan=False)),
        jitter=draw(st.floats(min_value=0, max_value=1)),
        jitter_s=draw(seconds),
        attempts=draw(st.none() | st.integers(min_value=1, max_value=100)),
    )


def drawing(backoff: Backoff, r: float) -> Backoff:
    """The same backoff, its chance always drawing `r`."""
    return replace(backoff, random=lambda: r)


@given(backoffs(), failures, failures)
def test_pauses_never_shrink_before_chance(backoff: Backoff, n: int, m: int) -> None:
    earlier, later = sorted((n, m))
    assert backoff.pause(earlier) <= backoff.pause(later)
    assert backoff.pause(later) <= backoff.pause(later + 1)


@given(backoffs(), failures, draws)
def test_no_pause_passes_the_ceiling(backoff: Backoff, n: int, r: float) -> None:
    assert 0 <= backoff.pause(n) <= backoff.ceiling
    assert 0 <= drawing(backoff, r).delay(n) <= backoff.ceiling


@given(backoffs(), failures, draws)
def test_chance_stays_within_its_bounds(backoff: Backoff, n: int, r: float) -> None:
    low = (1 - backoff.jitter) * backoff.pause(n)
    high = min(backoff.ceiling, backoff.pause(n) + backoff.jitter_s)
    assert low <= drawing(backoff, r).delay(n) <= high


@given(backoffs(), st.integers(min_value=1, max_value=50), draws)
def test_without_jitter_the_pause_is_the_grown_one(backoff: Backoff, n: int, r: float) -> None:
    fixed = drawing(replace(backoff, jitter=0.0, jitter_s=0.0), r)
    grown = min(backoff.ceiling, backoff.first * backoff.factor ** (n - 1))
    assert fixed.delay(n) == fixed.pause(n) == grown


@given(backoffs())
def test_attempts_are_respected(backoff: Backoff) -> None:
    tries = 1  # each one fails
    while backoff.tries_again(failures=tries) and tries < 1000:
        tries += 1
    assert tries == (backoff.attempts or 1000)  # None: never gives up


def test_full_jitter_reaches_from_nothing_to_the_pause() -> None:
    full = Backoff(first=0.01, ceiling=0.2, jitter=1.0)
    assert drawing(full, 0.0).delay(3) == 0.0
    assert drawing(full, 0.5).delay(3) == 0.02
    assert drawing(full, 0.999).delay(3) == pytest.approx(0.04, rel=1e-2)


def test_added_jitter_comes_before_the_ceiling() -> None:
    added = Backoff(first=0.05, ceiling=0.12, jitter_s=0.05)
    assert [drawing(added, 0.0).delay(n) for n in (1, 2, 3)] == [0.05, 0.1, 0.12]
    assert [drawing(added, 0.5).delay(n) for n in (1, 2, 3)] == pytest.approx([0.075, 0.12, 0.12])


def test_a_broker_down_for_days_waits_the_ceiling() -> None:
    assert PUBLISH.delay(10**9) == 60.0
    assert Backoff(first=0, ceiling=1).delay(10**9) == 0.0


@pytest.mark.parametrize("figures", [
    {"first": -1, "ceiling": 1}, {"first": 2, "ceiling": 1},
    {"first": 1, "ceiling": float("inf")}, {"first": 1, "ceiling": 2, "factor": 0.5},
    {"first": 1, "ceiling": 2, "jitter": 1.5}, {"first": 1, "ceiling": 2, "jitter_s": -1},
    {"first": 1, "ceiling": 2, "attempts": 0},
])
def test_nonsense_figures_are_refused(figures: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**figures)  # type: ignore[arg-type]


# -- each loop's figures, as they were before the one rule --------------------------------


def test_a_conflicting_transaction_is_tried_five_times_with_full_jitter() -> None:
    assert (CONFLICTS.attempts, CONFLICTS.jitter, CONFLICTS.jitter_s) == (5, 1.0, 0.0)
    assert [CONFLICTS.pause(n) for n in range(1, 6)] == [0.01, 0.02, 0.04, 0.08, 0.16]
    assert CONFLICTS.pause(6) == 0.2


def test_a_failed_publish_waits_half_a_second_doubling_to_a_minute_forever() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n).total_seconds() for n in range(0, 10)] == [
        0.5, 0.5, 1, 2, 4, 8, 16, 32, 60, 60]
    assert PUBLISH.attempts is None


def test_an_operator_send_is_tried_twice_50_to_100_ms_apart() -> None:
    assert OPERATOR_SEND.attempts == 2
    assert drawing(OPERATOR_SEND, 0.0).delay(1) == 0.05
    assert drawing(OPERATOR_SEND, 0.999999).delay(1) == pytest.approx(0.1)
    assert [OPERATOR_SEND.pause(n) for n in (2, 3, 6)] == [0.1, 0.2, 1.0]  # more retries


def test_a_failed_delivery_goes_back_to_its_queue_after_a_growing_pause() -> None:
    rabbit = rabbit_consumer.REDELIVERY
    assert [rabbit.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert [inprocess_consumer.REDELIVERY.delay(n) for n in (1, 2, 5)] == [1, 1, 1]


def test_a_failed_relay_pass_is_followed_by_the_next_a_second_later() -> None:
    assert [RELAY_AFTER_ERROR.delay(n) for n in (1, 2, 100)] == [1, 1, 1]
