"""The core's CircuitBreaker port: tenacity retries around a purgatory breaker per operator.

Every try goes through the breaker, so retries count towards `threshold`
consecutive transient failures, which open the circuit for `reset_s` seconds:
calls then fail at once with CircuitOpen, and failover moves on without
waiting. After `reset_s` one trial call goes through (concurrent calls still
see the circuit open): its success closes the circuit, a transient failure
opens it again. Only transient OperatorErrors count: a refused number (or any
other exception) is an answer, which purgatory treats as a success.

Purgatory reads `time.time()` itself, so the reset is wall-clock time (tests
use a short `reset_s`); the retry's sleep is injectable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from purgatory import AsyncCircuitBreakerFactory, ContextChanged, Event
from purgatory.domain.model import Context, OpenedState
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from smsgw_core.operators import CircuitOpen, OperatorError

log = logging.getLogger("smsgw.resilience")

BreakerState = Literal["closed", "open", "half-opened"]
Sleep = Callable[[float], Awaitable[None]]
StateListener = Callable[[str, BreakerState], None]

_STATES: dict[str, BreakerState] = {
    "closed": "closed", "opened": "open", "half-opened": "half-opened"
}


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, OperatorError) and exc.transient


def _not_a_failure(exc: BaseException) -> bool:
    return not is_transient(exc)


class ResilientBreaker:
    def __init__(
        self,
        *,
        threshold: int = 5,
        reset_s: float = 30.0,
        attempts: int = 2,
        backoff_s: float = 0.05,
        backoff_max_s: float = 1.0,
        jitter_s: float = 0.05,
        sleep: Sleep = asyncio.sleep,
        on_state_change: StateListener | None = None,
    ) -> None:
        if threshold < 1 or attempts < 1:
            raise ValueError("threshold and attempts must be at least 1")
        if reset_s <= 0:
            raise ValueError("reset_s must be positive")
        self._attempts = attempts
        self._wait = wait_exponential_jitter(
            multiplier=backoff_s, max=backoff_max_s, jitter=jitter_s
        )
        self._sleep = sleep
        self._on_state_change = on_state_change
        # Exception, not BaseException: a cancelled send counts as a failure,
        # never as the success that would close a half-open circuit.
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold, default_ttl=reset_s,
            exclude=[(Exception, _not_a_failure)],
        )
        self._factory.add_listener(self._state_changed)
        self._contexts: dict[str, Context] = {}
        self._trials: set[str] = set()

    async def call(self, operator: str, send: Callable[[], Awaitable[str]]) -> str:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception(is_transient),
            sleep=self._sleep,
            reraise=True,
        )
        result: str = await retrying(self._through_breaker, operator, send)
        return result

    def state(self, operator: str) -> BreakerState:
        """What the next call would meet (an expired open circuit is half-opened)."""
        context = self._contexts.get(operator)
        if context is None:
            return "closed"
        if context.state == "opened" and time.time() > (context.opened_at or 0) + context.ttl:
            return "half-opened"  # purgatory moves there lazily, on the next call
        return _STATES[context.state]

    async def _through_breaker(self, operator: str, send: Callable[[], Awaitable[str]]) -> str:
        breaker = await self._factory.get_breaker(operator)
        self._contexts[operator] = breaker.context
        trial = self.state(operator) == "half-opened"
        if trial and operator in self._trials:
            raise CircuitOpen(operator)
        if trial:
            self._trials.add(operator)
        try:
            async with breaker:
                return await send()
        except OpenedState as opened:
            # Purgatory raises its one OpenedState instance on every rejected call,
            # so its traceback would grow (and pin frames) forever.
            opened.__traceback__ = None
        finally:
            if trial:
                self._trials.discard(operator)
        raise CircuitOpen(operator)  # outside the except: no purgatory context attached

    def _state_changed(self, operator: str, kind: str, event: Event) -> None:
        if kind != "state_changed" or not isinstance(event, ContextChanged):
            return
        state = _STATES[event.state]
        level = logging.WARNING if state == "open" else logging.INFO
        log.log(level, "operator %s: circuit %s", operator, state)
        if self._on_state_change is not None:
            try:
                self._on_state_change(operator, state)
            except Exception:  # a metrics hook must not break a send
                log.exception("circuit state listener failed for %s", operator)
