"""A circuit breaker that counts consecutive failures on an injected clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from smsgw_core.operators import CircuitOpen, OperatorError
from smsgw_core.ports import Clock


@dataclass
class _BreakerState:
    failures: int = 0
    opened_at: datetime | None = None
    trial_running: bool = False


class CountingCircuitBreaker:
    """Opens after `threshold` consecutive transient failures; half-opens after `reset`.

    A simpler policy than the adapter's (a failure rate over a time window), so
    a test opens a circuit with a count; the port's rules are the same.

    In half-open state one trial call is let through (concurrent calls still see
    the circuit open): success closes the circuit, failure opens it for another
    `reset`.
    """

    def __init__(self, clock: Clock, threshold: int = 5, reset: timedelta = timedelta(seconds=30)):
        self.clock = clock
        self.threshold = threshold
        self.reset = reset
        self._states: dict[str, _BreakerState] = {}

    def is_open(self, operator: str) -> bool:
        state = self._states.get(operator)
        if state is None or state.opened_at is None:
            return False
        return self.clock.now() - state.opened_at < self.reset

    async def call(self, operator: str, send: Callable[[], Awaitable[str]]) -> str:
        state = self._states.setdefault(operator, _BreakerState())
        if self.is_open(operator):
            raise CircuitOpen(operator)
        trial = state.opened_at is not None  # half-open: this call decides
        if trial:
            if state.trial_running:
                raise CircuitOpen(operator)
            state.trial_running = True
        try:
            result = await send()
        except OperatorError as exc:
            if exc.transient:
                state.failures += 1
                if state.opened_at is not None or state.failures >= self.threshold:
                    state.opened_at = self.clock.now()
            raise
        finally:
            if trial:
                state.trial_running = False
        state.failures, state.opened_at = 0, None
        return result
