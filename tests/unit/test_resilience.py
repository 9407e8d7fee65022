"""ResilientBreaker: a failure-rate circuit per operator around a send's retries.

Time is a hand-moved clock and the retry's sleep a recording fake: nothing here
waits for real.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

import pytest

from smsgw_adapters.resilience import ResilientBreaker
from smsgw_app.config import ConfigError, Settings
from smsgw_core.backoff import Backoff
from smsgw_core.failover import send_with_failover
from smsgw_core.operators import CircuitOpen, ErrorClass, OperatorError, OutgoingSms
from smsgw_core.testing import Behaviour, FakeTicks, ScriptedOperator, always

SMS = OutgoingSms("+989120000001", "hello", "sms-1:+989120000001")
TRANSIENT, PERMANENT = ErrorClass.TRANSIENT, ErrorClass.PERMANENT
RESET_S = 5.0


def script(*answers: str | ErrorClass) -> Behaviour:
    remaining = iter(answers)
    return lambda sms: next(remaining)


def every(n: int, failing: int = 1) -> Behaviour:
    """Of each n tries in a row, the first `failing` fail (transient), the rest succeed."""
    tries = 0

    def answer(sms: OutgoingSms) -> str | ErrorClass:
        nonlocal tries
        tries += 1
        return TRANSIENT if (tries - 1) % n < failing else f"id-{tries}"

    return answer


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Breaker:
    """A ResilientBreaker with its clock, its sleep and the state changes it reported."""

    def __init__(self, **options: object) -> None:
        self.clock = FakeTicks()
        self.sleep = RecordingSleep()
        self.changes: list[str] = []
        options = {"attempts": 1, "sleep": self.sleep, **options}
        self.resilient = ResilientBreaker(
            clock=self.clock, on_state_change=lambda op, state: self.changes.append(state),
            **options,  # type: ignore[arg-type]
        )

    def state(self) -> str:
        return self.resilient.state("A")

    async def send(self, operator: ScriptedOperator) -> str:
        return await self.resilient.call(operator.name, partial(operator.send, SMS))

    async def send_quietly(self, operator: ScriptedOperator) -> None:
        """Send, whatever comes of it (the operator's counts tell)."""
        with contextlib.suppress(OperatorError, CircuitOpen):
            await self.send(operator)

    async def open(self, operator: ScriptedOperator) -> None:
        while self.state() == "closed":
            await self.send_quietly(operator)
        assert self.state() == "open"


# -- retries ------------------------------------------------------------------------------


async def test_a_transient_error_is_retried_after_a_short_backoff() -> None:
    b = Breaker(attempts=2, retry=Backoff(first=0.05, ceiling=1.0, jitter_s=0.05))
    operator = ScriptedOperator("A", script(TRANSIENT, "A-1"))
    assert await b.send(operator) == "A-1"
    assert operator.calls == 2
    assert len(b.sleep.waits) == 1 and 0.05 <= b.sleep.waits[0] <= 0.1
    assert b.state() == "closed"


async def test_retries_are_bounded_and_the_last_error_surfaces() -> None:
    b = Breaker(attempts=3, retry=Backoff(first=0.05, ceiling=1.0))
    operator = ScriptedOperator("A", always(TRANSIENT))
    with pytest.raises(OperatorError) as caught:
        await b.send(operator)
    assert caught.value.transient
    assert operator.calls == 3
    assert b.sleep.waits == [0.05, 0.1]  # exponential


async def test_a_call_and_its_retries_count_as_one_outcome() -> None:
    # Two of every three tries fail, but every call succeeds on its third try.
    b = Breaker(attempts=3, min_calls=2, failure_rate=0.5)
    operator = ScriptedOperator("A", every(3, failing=2))
    for _ in range(30):
        await b.send(operator)
    assert operator.calls == 90 and b.state() == "closed"

    # A call whose three tries all fail is one failure: the second one opens it.
    b = Breaker(attempts=3, min_calls=2, failure_rate=1.0)
    operator = ScriptedOperator("A", always(TRANSIENT))
    await b.send_quietly(operator)
    assert (operator.calls, b.state()) == (3, "closed")
    await b.send_quietly(operator)
    assert (operator.calls, b.state()) == (6, "open")


async def test_a_retry_is_not_tried_once_other_calls_opened_the_circuit() -> None:
    backoff = asyncio.Event()
    held: list[float] = []

    async def sleep(seconds: float) -> None:
        if not held:  # the first call's backoff waits; the others' go straight on
            held.append(seconds)
            await backoff.wait()

    b = Breaker(attempts=2, min_calls=1, failure_rate=1.0, sleep=sleep)
    operator = ScriptedOperator("A", always(TRANSIENT))
    first = asyncio.create_task(b.send(operator))
    await asyncio.sleep(0)  # its first try failed; it waits in its backoff
    await b.send_quietly(operator)  # both tries fail: the circuit opens
    assert (b.state(), operator.calls) == ("open", 3)
    backoff.set()
    with pytest.raises(CircuitOpen):
        await first
    assert operator.calls == 3


# -- what opens the circuit: a failure rate over a window --------------------------------


@pytest.mark.parametrize("failing", [1, 2], ids=["20%", "40%"])
async def test_an_operator_failing_a_share_below_the_rate_keeps_its_traffic(
    failing: int,
) -> None:
    b = Breaker(window_s=10, min_calls=20, failure_rate=0.5)
    operator = ScriptedOperator("A", every(5, failing=failing))
    delivered = 0
    for _ in range(1000):  # 100 calls a second for 10 s: a full window, many times over
        b.clock.advance(0.01)
        with contextlib.suppress(OperatorError):
            await b.send(operator)
            delivered += 1
    assert operator.calls == 1000  # none refused by the circuit
    assert delivered == 1000 - 200 * failing
    assert b.changes == [] and b.state() == "closed"


async def test_an_operator_failing_every_call_opens_after_min_calls_in_the_window() -> None:
    b = Breaker(window_s=10, min_calls=20, failure_rate=0.5)
    operator = ScriptedOperator("A", always(TRANSIENT))
    for _ in range(19):
        b.clock.advance(0.1)
        await b.send_quietly(operator)
    assert b.state() == "closed"  # 19 failures are not yet min_calls
    await b.send_quietly(operator)
    assert b.state() == "open" and b.changes == ["open"]
    with pytest.raises(CircuitOpen) as caught:
        await b.send(operator)
    assert operator.calls == 20  # refused without calling the operator
    assert caught.value.operator == "A" and caught.value.__context__ is None


async def test_the_rate_is_over_every_call_in_the_window() -> None:
    b = Breaker(window_s=10, min_calls=20, failure_rate=0.5)
    operator = ScriptedOperator("A", script(*["ok"] * 10, *[TRANSIENT] * 10))
    for _ in range(19):
        await b.send_quietly(operator)
    assert b.state() == "closed"  # 9 of 19 failed
    await b.send_quietly(operator)
    assert b.state() == "open"  # 10 of 20


async def test_calls_older_than_the_window_no_longer_count() -> None:
    b = Breaker(window_s=10, min_calls=20, failure_rate=0.5)
    operator = ScriptedOperator("A", always(TRANSIENT))
    for _ in range(19):
        await b.send_quietly(operator)
    b.clock.advance(10.001)  # those 19 failures leave the window
    for _ in range(19):
        await b.send_quietly(operator)
    assert b.state() == "closed"
    await b.send_quietly(operator)
    assert b.state() == "open" and operator.calls == 39


async def test_a_refused_number_never_counts_as_a_failure() -> None:
    b = Breaker(attempts=3, min_calls=2, failure_rate=0.5)
    operator = ScriptedOperator("A", always(PERMANENT))
    for _ in range(50):
        with pytest.raises(OperatorError) as caught:
            await b.send(operator)
        assert caught.value.error_class is PERMANENT
    assert operator.calls == 50 and b.sleep.waits == []  # never retried
    assert b.state() == "closed"


async def test_an_unexpected_error_is_neither_retried_nor_counted() -> None:
    b = Breaker(attempts=3, min_calls=2, failure_rate=0.5)

    async def broken() -> str:
        raise RuntimeError("adapter bug")

    operator = ScriptedOperator("A", always(TRANSIENT))
    await b.send_quietly(operator)
    for _ in range(5):
        with pytest.raises(RuntimeError):
            await b.resilient.call("A", broken)
    assert b.state() == "closed"  # neither a second call nor a success
    await b.send_quietly(operator)
    assert b.state() == "open"  # 2 of 2 failed


async def test_a_cancelled_send_counts_as_a_failure() -> None:
    b = Breaker(min_calls=1, failure_rate=1.0)

    async def hanging() -> str:
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(b.resilient.call("A", hanging))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.state() == "open"


# -- open, half-opened, closed ------------------------------------------------------------


async def test_after_the_reset_a_trial_success_closes_the_circuit() -> None:
    b = Breaker(min_calls=1, failure_rate=1.0, reset_s=RESET_S)
    operator = ScriptedOperator("A", script(TRANSIENT, "A-1", TRANSIENT))
    await b.open(operator)
    b.clock.advance(RESET_S - 0.001)
    assert b.state() == "open"
    b.clock.advance(0.001)
    assert b.state() == "half-opened"
    assert await b.send(operator) == "A-1"
    assert b.state() == "closed"
    assert b.changes == ["open", "half-opened", "closed"]
    await b.send_quietly(operator)  # closed afresh: the old failure is forgotten
    assert operator.calls == 3 and b.state() == "open"


async def test_a_trial_failure_opens_the_circuit_for_another_reset() -> None:
    b = Breaker(min_calls=1, failure_rate=1.0, reset_s=RESET_S)
    operator = ScriptedOperator("A", always(TRANSIENT))
    await b.open(operator)
    b.clock.advance(RESET_S)
    await b.send_quietly(operator)  # the trial fails
    assert b.state() == "open"
    b.clock.advance(RESET_S - 0.001)
    await b.send_quietly(operator)  # refused
    assert operator.calls == 2 and b.state() == "open"
    b.clock.advance(0.001)
    assert b.state() == "half-opened"
    assert b.changes == ["open", "half-opened", "open", "half-opened"]


async def test_a_refused_number_in_the_trial_closes_the_circuit() -> None:
    b = Breaker(min_calls=1, failure_rate=1.0, reset_s=RESET_S)
    operator = ScriptedOperator("A", script(TRANSIENT, PERMANENT))
    await b.open(operator)
    b.clock.advance(RESET_S)
    with pytest.raises(OperatorError):
        await b.send(operator)
    assert b.state() == "closed"  # the operator answered


async def test_while_the_trial_runs_other_calls_see_the_circuit_open() -> None:
    b = Breaker(min_calls=1, failure_rate=1.0, reset_s=RESET_S)
    answer = asyncio.Event()

    async def slow_trial() -> str:
        await answer.wait()
        return "A-trial"

    await b.open(ScriptedOperator("A", always(TRANSIENT)))
    b.clock.advance(RESET_S)
    trial = asyncio.create_task(b.resilient.call("A", slow_trial))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen):
        await b.resilient.call("A", slow_trial)
    answer.set()
    assert await trial == "A-trial"
    assert b.state() == "closed"


async def test_a_cancelled_trial_opens_the_circuit_again() -> None:
    b = Breaker(min_calls=1, failure_rate=1.0, reset_s=RESET_S)

    async def hanging() -> str:
        await asyncio.Event().wait()
        return "never"

    await b.open(ScriptedOperator("A", always(TRANSIENT)))
    b.clock.advance(RESET_S)
    task = asyncio.create_task(b.resilient.call("A", hanging))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.state() == "open"


async def test_a_call_let_in_before_the_circuit_opened_does_not_decide_the_trial() -> None:
    b = Breaker(min_calls=1, failure_rate=1.0, reset_s=RESET_S)
    late_answer, trial_answer = asyncio.Event(), asyncio.Event()

    async def late() -> str:
        await late_answer.wait()
        return "A-late"

    async def failing_trial() -> str:
        await trial_answer.wait()
        raise OperatorError("A", TRANSIENT, "503")

    slow = asyncio.create_task(b.resilient.call("A", late))  # let in while closed
    await asyncio.sleep(0)
    await b.open(ScriptedOperator("A", always(TRANSIENT)))
    b.clock.advance(RESET_S)
    trial = asyncio.create_task(b.resilient.call("A", failing_trial))
    await asyncio.sleep(0)
    late_answer.set()
    assert await slow == "A-late"
    assert b.state() == "half-opened"  # the old success closed nothing
    trial_answer.set()
    with pytest.raises(OperatorError):
        await trial
    assert b.state() == "open"


async def test_a_failing_state_listener_does_not_break_a_send() -> None:
    def broken(operator: str, state: str) -> None:
        raise RuntimeError("metrics bug")

    resilient = ResilientBreaker(attempts=1, min_calls=1, failure_rate=1.0,
                                 clock=FakeTicks(), on_state_change=broken)
    operator = ScriptedOperator("A", always(TRANSIENT))
    with pytest.raises(OperatorError):
        await resilient.call("A", partial(operator.send, SMS))
    assert resilient.state("A") == "open"


# -- with failover ------------------------------------------------------------------------


async def test_failover_moves_past_an_open_circuit_at_once() -> None:
    b = Breaker(attempts=2, min_calls=1, failure_rate=1.0)
    a = ScriptedOperator("A", always(TRANSIENT))
    other = ScriptedOperator("B")

    first = await send_with_failover(SMS, [a, other], b.resilient)
    second = await send_with_failover(SMS, [a, other], b.resilient)

    assert first.delivered and first.provider == "B"
    assert a.calls == 2  # both tries of the first send; none for the second
    assert second.delivered and second.provider == "B"
    assert second.errors == ("A: circuit open",)
    assert b.resilient.state("A") == "open" and b.resilient.state("B") == "closed"


async def test_a_permanent_error_stops_failover_without_touching_the_circuit() -> None:
    b = Breaker(min_calls=1, failure_rate=1.0)
    a = ScriptedOperator("A", always(PERMANENT))
    other = ScriptedOperator("B")
    outcome = await send_with_failover(SMS, [a, other], b.resilient)
    assert not outcome.delivered and other.calls == 0
    assert b.resilient.state("A") == "closed"


@pytest.mark.parametrize("options", [
    {"attempts": 0}, {"reset_s": 0}, {"window_s": 0}, {"min_calls": 0},
    {"failure_rate": 0}, {"failure_rate": 1.5},
])
def test_nonsense_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ResilientBreaker(**options)  # type: ignore[arg-type]


# -- settings -----------------------------------------------------------------------------


def test_the_breaker_settings_and_their_defaults() -> None:
    default = Settings.from_env({})
    assert (default.breaker_window_s, default.breaker_min_calls, default.breaker_failure_rate,
            default.breaker_reset_s) == (10.0, 20, 0.5, 5.0)
    chosen = Settings.from_env({
        "SMSGW_BREAKER_WINDOW_S": "30", "SMSGW_BREAKER_MIN_CALLS": "5",
        "SMSGW_BREAKER_FAILURE_RATE": "1", "SMSGW_BREAKER_RESET_S": "0.5",
    })
    assert (chosen.breaker_window_s, chosen.breaker_min_calls, chosen.breaker_failure_rate,
            chosen.breaker_reset_s) == (30.0, 5, 1.0, 0.5)


@pytest.mark.parametrize(("name", "bad"), [
    ("SMSGW_BREAKER_WINDOW_S", "0"), ("SMSGW_BREAKER_WINDOW_S", "ten"),
    ("SMSGW_BREAKER_MIN_CALLS", "0"), ("SMSGW_BREAKER_MIN_CALLS", "2.5"),
    ("SMSGW_BREAKER_FAILURE_RATE", "0"), ("SMSGW_BREAKER_FAILURE_RATE", "50%"),
    ("SMSGW_BREAKER_FAILURE_RATE", "1.5"), ("SMSGW_BREAKER_RESET_S", "-1"),
    ("SMSGW_BREAKER_THRESHOLD", "5"),  # gone: refused rather than silently ignored
])
def test_a_bad_breaker_setting_is_one_line_naming_it(name: str, bad: str) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        Settings.from_env({name: bad})
    assert "\n" not in str(caught.value)
