"""The core's CircuitBreaker port: a rate circuit per operator around tenacity retries.

One logical call is one outcome for the circuit: its retries run inside it, and
it failed only if its last try failed. The circuit (circuit.py) opens when, of
the calls that finished in the last `window_s` seconds (at least `min_calls`),
a share of at least `failure_rate` failed; open, calls fail at once with
CircuitOpen, so failover moves on without waiting; after `reset_s` one trial
call goes through at a time, and its outcome closes or reopens the circuit.

What counts: a transient OperatorError (after the retries) or a cancelled call
is a failure (a cancel is never the success that would close a circuit); a
refused number or a message id is an answer, so a success; any other exception
(an adapter bug) says nothing about the operator and is not counted.

A retry is not tried once the circuit changed state under the call (other calls
opened it meanwhile): it raises CircuitOpen, and failover moves on.

This replaced purgatory, which counts consecutive failures and reads
`time.time()` itself (docs/operators.md says why). Time is an injected
monotonic clock; the retry's sleep is injectable too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from smsgw_adapters.resilience.circuit import (
    Admission,
    BreakerState,
    CircuitSettings,
    Clock,
    RateCircuit,
)
from smsgw_core.operators import CircuitOpen, OperatorError

log = logging.getLogger("smsgw.resilience")

Sleep = Callable[[float], Awaitable[None]]
StateListener = Callable[[str, BreakerState], None]


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, OperatorError) and exc.transient


class ResilientBreaker:
    def __init__(
        self,
        *,
        window_s: float = 10.0,
        min_calls: int = 20,
        failure_rate: float = 0.5,
        reset_s: float = 5.0,
        attempts: int = 2,
        backoff_s: float = 0.05,
        backoff_max_s: float = 1.0,
        jitter_s: float = 0.05,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._settings = CircuitSettings(window_s, min_calls, failure_rate, reset_s)
        self._attempts = attempts
        self._wait = wait_exponential_jitter(
            multiplier=backoff_s, max=backoff_max_s, jitter=jitter_s
        )
        self._sleep = sleep
        self._clock = clock
        self._on_state_change = on_state_change
        self._circuits: dict[str, RateCircuit] = {}

    async def call(self, operator: str, send: Callable[[], Awaitable[str]]) -> str:
        circuit = self._circuit(operator)
        admission = circuit.admit()
        if admission is None:
            raise CircuitOpen(operator)
        try:
            result = await self._with_retries(operator, circuit, admission, send)
        except OperatorError as exc:
            if exc.transient:
                circuit.failed(admission)
            else:
                circuit.succeeded(admission)  # the operator answered: it refused
            raise
        except Exception:
            # An adapter bug, or CircuitOpen before a retry (other calls opened the
            # circuit meanwhile): neither says how the operator is doing.
            circuit.abandoned(admission)
            raise
        except BaseException:
            circuit.failed(admission)  # cancelled: never the success that closes it
            raise
        circuit.succeeded(admission)
        return result

    def state(self, operator: str) -> BreakerState:
        """What the next call would meet (an expired open circuit is half-opened)."""
        circuit = self._circuits.get(operator)
        return "closed" if circuit is None else circuit.state

    async def _with_retries(
        self, operator: str, circuit: RateCircuit, admission: Admission,
        send: Callable[[], Awaitable[str]],
    ) -> str:
        tries = 0
        first_failure: OperatorError | None = None

        async def attempt() -> str:
            nonlocal tries
            tries += 1
            if tries == 1 and first_failure is not None:
                raise first_failure  # the first try, made already: tenacity counts it
            if tries > 1 and not circuit.still_admitted(admission):
                raise CircuitOpen(operator)
            return await send()

        # The first try goes without tenacity, whose machinery cost a worker a
        # tenth of its CPU per send; only a transient failure brings it in, with
        # that try replayed to it, so the retries and their pauses are as ever.
        try:
            return await attempt()
        except OperatorError as exc:
            if not is_transient(exc) or self._attempts == 1:
                raise
            first_failure, tries = exc, 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception(is_transient),
            sleep=self._sleep,
            reraise=True,
        )
        result: str = await retrying(attempt)
        return result

    def _circuit(self, operator: str) -> RateCircuit:
        circuit = self._circuits.get(operator)
        if circuit is None:
            circuit = RateCircuit(
                self._settings, self._clock,
                on_change=lambda state: self._state_changed(operator, state),
            )
            self._circuits[operator] = circuit
        return circuit

    def _state_changed(self, operator: str, state: BreakerState) -> None:
        level = logging.WARNING if state == "open" else logging.INFO
        log.log(level, "operator %s: circuit %s", operator, state)
        if self._on_state_change is not None:
            try:
                self._on_state_change(operator, state)
            except Exception:  # a metrics hook must not break a send
                log.exception("circuit state listener failed for %s", operator)
