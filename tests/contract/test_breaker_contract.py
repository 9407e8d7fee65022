"""What every CircuitBreaker implementation promises (smsgw_core.ports.CircuitBreaker).

Each breaker runs with the same policy in its own terms: it opens after
THRESHOLD failed calls in a row and refuses calls for RESET_S seconds. The
ResilientBreaker opens on a failure rate, so a rate of 1.0 over THRESHOLD
calls is that policy; it retries too, so it runs with two tries a call (and a
backoff that does not wait) to show a call is one outcome however many tries.
Time is a clock moved by hand: nothing here waits for real.

Where the fake breaker differs by design (it never retries), the case says so
and skips it for the fake.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Protocol

import pytest
from prometheus_client import CollectorRegistry

from smsgw_adapters.observability import MeasuredBreaker, Metrics
from smsgw_adapters.resilience import ResilientBreaker
from smsgw_core.operators import CircuitOpen, ErrorClass, OperatorError
from smsgw_core.ports import CircuitBreaker
from smsgw_core.testing import CountingCircuitBreaker, FakeClock, FakeTicks

THRESHOLD = 3
RESET_S = 5.0
TRANSIENT, PERMANENT = ErrorClass.TRANSIENT, ErrorClass.PERMANENT


class Clock(Protocol):
    def advance(self, seconds: float) -> None: ...


class FakeClockSeconds:
    """The fake breaker's Clock port (datetimes), moved in seconds like the others."""

    def __init__(self) -> None:
        self.clock = FakeClock()

    def advance(self, seconds: float) -> None:
        self.clock.advance(timedelta(seconds=seconds))


async def no_wait(_: float) -> None:
    return None


def resilient(clock: FakeTicks) -> ResilientBreaker:
    return ResilientBreaker(
        window_s=60.0, min_calls=THRESHOLD, failure_rate=1.0, reset_s=RESET_S,
        attempts=2, sleep=no_wait, clock=clock,
    )


def make_resilient() -> tuple[CircuitBreaker, Clock]:
    clock = FakeTicks()
    return resilient(clock), clock


def make_fake() -> tuple[CircuitBreaker, Clock]:
    clock = FakeClockSeconds()
    fake = CountingCircuitBreaker(
        clock.clock, threshold=THRESHOLD, reset=timedelta(seconds=RESET_S)
    )
    return fake, clock


def make_measured() -> tuple[CircuitBreaker, Clock]:
    clock = FakeTicks()
    return MeasuredBreaker(resilient(clock), Metrics(CollectorRegistry()), ["A", "B"]), clock


BREAKERS: dict[str, Callable[[], tuple[CircuitBreaker, Clock]]] = {
    "resilient": make_resilient,
    "fake": make_fake,
    "measured-resilient": make_measured,
}
RETRIES = {"resilient", "measured-resilient"}


@pytest.fixture(params=list(BREAKERS))
def subject(request: pytest.FixtureRequest) -> Iterator[tuple[CircuitBreaker, Clock]]:
    yield BREAKERS[request.param]()


class Sends:
    """A send that answers from a script (the last answer repeats) and counts its tries."""

    def __init__(self, *answers: str | ErrorClass, operator: str = "A") -> None:
        self.answers = list(answers) or ["ok"]
        self.operator = operator
        self.tries = 0

    async def __call__(self) -> str:
        answer = self.answers[min(self.tries, len(self.answers) - 1)]
        self.tries += 1
        if isinstance(answer, ErrorClass):
            raise OperatorError(self.operator, answer, "scripted")
        return answer


async def attempt(breaker: CircuitBreaker, send: Callable[[], Awaitable[str]],
                  operator: str = "A") -> None:
    """Call, whatever comes of it (the send's tries tell)."""
    with contextlib.suppress(OperatorError, CircuitOpen):
        await breaker.call(operator, send)


async def refuses(breaker: CircuitBreaker, operator: str = "A") -> bool:
    """Whether the circuit refuses a call at once, without sending."""
    probe = Sends("probe")
    try:
        await breaker.call(operator, probe)
    except CircuitOpen as refused:
        assert probe.tries == 0 and refused.operator == operator
        return True
    return False


async def open_circuit(breaker: CircuitBreaker, operator: str = "A") -> None:
    failing = Sends(TRANSIENT, operator=operator)
    for _ in range(THRESHOLD):
        await attempt(breaker, failing, operator)
    assert await refuses(breaker, operator)


# -- closed ------------------------------------------------------------------------------


async def test_a_success_passes_the_result_through(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, _ = subject
    send = Sends("A-1")
    assert await breaker.call("A", send) == "A-1"
    assert send.tries == 1


async def test_an_operator_error_surfaces_as_it_was_raised(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, _ = subject
    with pytest.raises(OperatorError) as caught:
        await breaker.call("A", Sends(PERMANENT))
    assert caught.value.error_class is PERMANENT and caught.value.operator == "A"
    with pytest.raises(OperatorError) as caught:
        await breaker.call("A", Sends(TRANSIENT))
    assert caught.value.transient


async def test_failures_below_the_threshold_keep_the_circuit_closed(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, _ = subject
    failing = Sends(TRANSIENT)
    for _ in range(THRESHOLD - 1):
        await attempt(breaker, failing)
    assert not await refuses(breaker)


async def test_failures_at_the_threshold_open_it_and_it_refuses_at_once(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, _ = subject
    failing = Sends(TRANSIENT)
    for _ in range(THRESHOLD):
        await attempt(breaker, failing)
    tries = failing.tries
    with pytest.raises(CircuitOpen) as caught:
        await breaker.call("A", failing)
    assert caught.value.operator == "A"
    assert failing.tries == tries  # refused without calling the operator


async def test_a_call_is_one_outcome_however_many_tries_it_takes(
    subject: tuple[CircuitBreaker, Clock], request: pytest.FixtureRequest,
) -> None:
    if request.node.callspec.params["subject"] not in RETRIES:
        # By design the fake never retries: a transient error ends its call.
        pytest.skip("the fake breaker does not retry")
    breaker, _ = subject
    for _ in range(THRESHOLD * 2):  # every call fails once, then succeeds on its retry
        send = Sends(TRANSIENT, "A-1")
        assert await breaker.call("A", send) == "A-1"
        assert send.tries == 2
    assert not await refuses(breaker)


async def test_a_refused_number_does_not_count_against_health(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, _ = subject
    refused = Sends(PERMANENT)
    for _ in range(THRESHOLD * 3):
        with pytest.raises(OperatorError):
            await breaker.call("A", refused)
    assert refused.tries == THRESHOLD * 3  # never retried
    assert not await refuses(breaker)


async def test_an_unexpected_error_surfaces_and_does_not_count(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, _ = subject

    async def broken() -> str:
        raise RuntimeError("adapter bug")

    for _ in range(THRESHOLD * 2):
        with pytest.raises(RuntimeError):
            await breaker.call("A", broken)
    assert not await refuses(breaker)


async def test_each_operator_has_its_own_circuit(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, _ = subject
    await open_circuit(breaker, "A")
    assert await breaker.call("B", Sends("B-1", operator="B")) == "B-1"


# -- open, half-opened, closed ------------------------------------------------------------


async def test_an_open_circuit_refuses_until_the_reset_time(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = subject
    await open_circuit(breaker)
    clock.advance(RESET_S - 0.001)
    assert await refuses(breaker)


async def test_after_the_reset_a_trial_goes_through_and_its_success_closes_it(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = subject
    await open_circuit(breaker)
    clock.advance(RESET_S)
    trial = Sends("A-trial")
    assert await breaker.call("A", trial) == "A-trial"
    assert trial.tries == 1
    # Closed afresh: it takes the threshold's failures again to open it.
    failing = Sends(TRANSIENT)
    for _ in range(THRESHOLD - 1):
        await attempt(breaker, failing)
    assert not await refuses(breaker)


async def test_a_failed_trial_opens_it_for_another_reset(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = subject
    await open_circuit(breaker)
    clock.advance(RESET_S)
    trial = Sends(TRANSIENT)
    await attempt(breaker, trial)
    assert trial.tries >= 1  # it went through
    assert await refuses(breaker)
    clock.advance(RESET_S - 0.001)
    assert await refuses(breaker)
    clock.advance(0.001)
    assert await breaker.call("A", Sends("A-1")) == "A-1"


async def test_a_refused_number_in_the_trial_leaves_the_next_call_through(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    # The operator answered: whether that closes the circuit (the ResilientBreaker)
    # or leaves it half-opened for the next trial (the fake) is the breaker's
    # policy, but it must not open it again.
    breaker, clock = subject
    await open_circuit(breaker)
    clock.advance(RESET_S)
    with pytest.raises(OperatorError):
        await breaker.call("A", Sends(PERMANENT))
    assert await breaker.call("A", Sends("A-1")) == "A-1"


async def test_while_the_trial_runs_other_calls_are_refused(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = subject
    answer = asyncio.Event()

    async def slow_trial() -> str:
        await answer.wait()
        return "A-trial"

    await open_circuit(breaker)
    clock.advance(RESET_S)
    trial = asyncio.create_task(breaker.call("A", slow_trial))
    await asyncio.sleep(0)  # let the trial in
    assert await refuses(breaker)
    answer.set()
    assert await trial == "A-trial"
    assert not await refuses(breaker)


async def test_a_cancelled_trial_is_not_the_success_that_closes_it(
    subject: tuple[CircuitBreaker, Clock],
) -> None:
    breaker, clock = subject

    async def hanging() -> str:
        await asyncio.Event().wait()
        return "never"

    await open_circuit(breaker)
    clock.advance(RESET_S)
    task = asyncio.create_task(breaker.call("A", hanging))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Not closed: a single failure (or none: the cancel reopened it) leaves it
    # refusing, where a closed circuit would take the threshold's failures.
    await attempt(breaker, Sends(TRANSIENT))
    assert await refuses(breaker)
