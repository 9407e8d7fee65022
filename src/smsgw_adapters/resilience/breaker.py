"""The core's CircuitBreaker port: a rate circuit per operator around the send's retries.

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
opened it meanwhile): it raises CircuitOpen, and failover moves on. Only a
transient OperatorError is tried again, after a pause of the core's Backoff
(OPERATOR_SEND: 50 ms and up to 50 ms more by chance, doubling, a second at most).

This replaced purgatory, which counts consecutive failures and reads
`time.time()` itself (docs/operators.md says why). Time is an injected
monotonic clock; the retry's sleep is injectable too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from smsgw_adapters.resilience.circuit import (
    Admission,
    BreakerState,
    CircuitSettings,
    Clock,
    RateCircuit,
)
from smsgw_core.backoff import Backoff
from smsgw_core.operators import CircuitOpen, OperatorError

log = logging.getLogger("smsgw.resilience")

Sleep = Callable[[float], Awaitable[None]]
StateListener = Callable[[str, BreakerState], None]

# Two tries in all (SMSGW_OPERATOR_RETRIES=1): the pause between them is short,
# since failover waits for it, and chance keeps sends that failed together apart.
OPERATOR_SEND = Backoff(first=0.05, factor=2.0, ceiling=1.0, jitter_s=0.05, attempts=2)


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
        retry: Backoff = OPERATOR_SEND,
        attempts: int | None = None,  # tries in all (SMSGW_OPERATOR_RETRIES + 1); None: retry's
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        if attempts is not None:
            retry = replace(retry, attempts=attempts)
        if retry.attempts is None:
            raise ValueError("an operator's send is tried a bounded number of times")
        self._settings = CircuitSettings(window_s, min_calls, failure_rate, reset_s)
        self._retry = retry
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
        failures = 0
        while True:
            try:
                return await send()
            except OperatorError as exc:
                failures += 1
                if not exc.transient or not self._retry.tries_again(failures):
                    raise
            await self._sleep(self._retry.delay(failures))
            if not circuit.still_admitted(admission):
                raise CircuitOpen(operator)

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
