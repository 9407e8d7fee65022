"""ResilientBreaker: tenacity retry around a purgatory breaker, per operator.

The retry's sleep is a recording fake. Purgatory reads the wall clock itself,
so the half-open tests use a short reset and really wait it out (~0.3 s each).
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

import pytest

from smsgw_adapters.resilience import ResilientBreaker
from smsgw_core.failover import send_with_failover
from smsgw_core.fakes import Behaviour, ScriptedOperator, always
from smsgw_core.operators import CircuitOpen, ErrorClass, OperatorError, OutgoingSms

SMS = OutgoingSms("+989120000001", "hello", "sms-1:+989120000001")
TRANSIENT, PERMANENT = ErrorClass.TRANSIENT, ErrorClass.PERMANENT
RESET_S = 0.3


def script(*answers: str | ErrorClass) -> Behaviour:
    remaining = iter(answers)
    return lambda sms: next(remaining)


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def breaker(**options: object) -> tuple[ResilientBreaker, RecordingSleep]:
    sleep = RecordingSleep()
    return ResilientBreaker(sleep=sleep, **options), sleep  # type: ignore[arg-type]


async def send(resilient: ResilientBreaker, operator: ScriptedOperator) -> str:
    return await resilient.call(operator.name, partial(operator.send, SMS))


async def test_a_transient_error_is_retried_after_a_short_backoff() -> None:
    resilient, sleep = breaker(attempts=2, backoff_s=0.05, jitter_s=0.05)
    operator = ScriptedOperator("A", script(TRANSIENT, "A-1"))
    assert await send(resilient, operator) == "A-1"
    assert operator.calls == 2
    assert len(sleep.waits) == 1 and 0.05 <= sleep.waits[0] <= 0.1
    assert resilient.state("A") == "closed"


async def test_retries_are_bounded_and_the_last_error_surfaces() -> None:
    resilient, sleep = breaker(attempts=3, backoff_s=0.05, jitter_s=0)
    operator = ScriptedOperator("A", always(TRANSIENT))
    with pytest.raises(OperatorError) as caught:
        await send(resilient, operator)
    assert caught.value.transient
    assert operator.calls == 3
    assert sleep.waits == [0.05, 0.1]  # exponential


async def test_a_permanent_error_is_not_retried_and_never_opens_the_circuit() -> None:
    resilient, sleep = breaker(threshold=2, attempts=3)
    operator = ScriptedOperator("A", always(PERMANENT))
    for _ in range(5):
        with pytest.raises(OperatorError) as caught:
            await send(resilient, operator)
        assert caught.value.error_class is PERMANENT
    assert operator.calls == 5 and sleep.waits == []
    assert resilient.state("A") == "closed"


async def test_an_unexpected_error_is_neither_retried_nor_counted() -> None:
    resilient, _ = breaker(threshold=1, attempts=3)

    async def broken() -> str:
        raise RuntimeError("adapter bug")

    with pytest.raises(RuntimeError):
        await resilient.call("A", broken)
    assert resilient.state("A") == "closed"


async def test_consecutive_transient_failures_open_the_circuit() -> None:
    resilient, _ = breaker(threshold=3, attempts=1)
    operator = ScriptedOperator("A", always(TRANSIENT))
    for _ in range(3):
        with pytest.raises(OperatorError):
            await send(resilient, operator)
    assert resilient.state("A") == "open"
    with pytest.raises(CircuitOpen) as caught:
        await send(resilient, operator)
    assert operator.calls == 3  # rejected without calling the operator
    assert caught.value.operator == "A"
    assert caught.value.__context__ is None  # purgatory's exception does not leak out


async def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    resilient, _ = breaker(threshold=2, attempts=1)
    operator = ScriptedOperator("A", script(TRANSIENT, "A-1", TRANSIENT, "A-2"))
    for _ in range(4):
        with contextlib.suppress(OperatorError):
            await send(resilient, operator)
    assert resilient.state("A") == "closed"


async def test_an_open_circuit_is_never_retried() -> None:
    resilient, sleep = breaker(threshold=1, attempts=3)
    operator = ScriptedOperator("A", always(TRANSIENT))
    with pytest.raises(CircuitOpen):  # the first try opened it; the retry met it open
        await send(resilient, operator)
    assert operator.calls == 1 and len(sleep.waits) == 1


async def test_after_the_reset_a_trial_success_closes_the_circuit() -> None:
    changes: list[tuple[str, str]] = []
    resilient, _ = breaker(threshold=1, attempts=1, reset_s=RESET_S,
                           on_state_change=lambda op, state: changes.append((op, state)))
    operator = ScriptedOperator("A", script(TRANSIENT, "A-1"))
    with pytest.raises(OperatorError):
        await send(resilient, operator)
    await asyncio.sleep(RESET_S + 0.05)
    assert resilient.state("A") == "half-opened"
    assert await send(resilient, operator) == "A-1"
    assert resilient.state("A") == "closed"
    assert changes == [("A", "open"), ("A", "half-opened"), ("A", "closed")]


async def test_a_trial_failure_opens_the_circuit_again() -> None:
    resilient, _ = breaker(threshold=1, attempts=1, reset_s=RESET_S)
    operator = ScriptedOperator("A", always(TRANSIENT))
    with pytest.raises(OperatorError):
        await send(resilient, operator)
    await asyncio.sleep(RESET_S + 0.05)
    with pytest.raises(OperatorError):
        await send(resilient, operator)
    assert resilient.state("A") == "open"
    with pytest.raises(CircuitOpen):
        await send(resilient, operator)
    assert operator.calls == 2


async def test_while_the_trial_runs_other_calls_see_the_circuit_open() -> None:
    resilient, _ = breaker(threshold=1, attempts=1, reset_s=RESET_S)
    answer = asyncio.Event()

    async def slow_trial() -> str:
        await answer.wait()
        return "A-trial"

    operator = ScriptedOperator("A", always(TRANSIENT))
    with pytest.raises(OperatorError):
        await send(resilient, operator)
    await asyncio.sleep(RESET_S + 0.05)
    trial = asyncio.create_task(resilient.call("A", slow_trial))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen):
        await resilient.call("A", slow_trial)
    answer.set()
    assert await trial == "A-trial"
    assert resilient.state("A") == "closed"


async def test_a_cancelled_send_counts_as_a_failure() -> None:
    resilient, _ = breaker(threshold=1, attempts=1)

    async def hanging() -> str:
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(resilient.call("A", hanging))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert resilient.state("A") == "open"


async def test_failover_moves_past_an_open_circuit_at_once() -> None:
    resilient, _ = breaker(threshold=2, attempts=2)
    a = ScriptedOperator("A", always(TRANSIENT))
    b = ScriptedOperator("B")

    first = await send_with_failover(SMS, [a, b], resilient)
    second = await send_with_failover(SMS, [a, b], resilient)

    assert first.delivered and first.provider == "B"
    assert a.calls == 2  # both tries of the first send; none for the second
    assert second.delivered and second.provider == "B"
    assert second.errors == ("A: circuit open",)
    assert resilient.state("A") == "open" and resilient.state("B") == "closed"


async def test_a_permanent_error_stops_failover_without_touching_the_circuit() -> None:
    resilient, _ = breaker(threshold=1)
    a = ScriptedOperator("A", always(PERMANENT))
    b = ScriptedOperator("B")
    outcome = await send_with_failover(SMS, [a, b], resilient)
    assert not outcome.delivered and b.calls == 0
    assert resilient.state("A") == "closed"


def test_nonsense_settings_are_refused() -> None:
    for options in ({"threshold": 0}, {"attempts": 0}, {"reset_s": 0}):
        with pytest.raises(ValueError):
            ResilientBreaker(**options)  # type: ignore[arg-type]
