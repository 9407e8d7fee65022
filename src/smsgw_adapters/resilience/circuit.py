"""One operator's circuit: opens on a failure rate over a sliding time window.

Closed, it keeps the outcomes of the calls that finished in the last `window_s`
seconds. It opens when at least `min_calls` of them finished there and at least
`failure_rate` of those failed: an operator failing a steady share of calls
below the rate keeps its traffic, and a handful of failures in a quiet window
opens nothing. Open, it refuses calls for `reset_s`; then it is half-opened and
lets one trial call through at a time (the others are refused): a success
closes it with an empty window, a failure opens it for another `reset_s`.

Time is the injected `clock` (seconds, monotonic), so tests move it by hand
and a wall-clock step cannot open or close a circuit.

Each state has an epoch, bumped on every change. An outcome counts only in the
epoch its call was let in: a call admitted while closed that ends after the
circuit opened says nothing new, and must not decide a half-open trial.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

BreakerState = Literal["closed", "open", "half-opened"]
Clock = Callable[[], float]
StateListener = Callable[[BreakerState], None]


@dataclass(frozen=True, slots=True)
class CircuitSettings:
    window_s: float = 10.0
    min_calls: int = 20
    failure_rate: float = 0.5
    reset_s: float = 5.0

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.reset_s <= 0:
            raise ValueError("window_s and reset_s must be positive")
        if self.min_calls < 1:
            raise ValueError("min_calls must be at least 1")
        if not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be above 0 and at most 1")


@dataclass(frozen=True, slots=True)
class Admission:
    """A call let through: the epoch it was let in, and whether it is the trial."""

    epoch: int
    trial: bool


class RateCircuit:
    def __init__(self, settings: CircuitSettings, clock: Clock,
                 on_change: StateListener | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._on_change = on_change
        self._state: BreakerState = "closed"
        self._epoch = 0
        self._opened_at = 0.0
        self._trial_running = False
        # (finished_at, failed) of the closed epoch's calls, oldest first.
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._failures = 0

    @property
    def state(self) -> BreakerState:
        """What the next call would meet (an expired open circuit is half-opened)."""
        if self._state == "open" and self._clock() >= self._opened_at + self._settings.reset_s:
            self._change("half-opened")
        return self._state

    def admit(self) -> Admission | None:
        """Let a call through (with its admission), or None: the circuit refuses it."""
        state = self.state
        if state == "open" or (state == "half-opened" and self._trial_running):
            return None
        if state == "half-opened":
            self._trial_running = True
        return Admission(self._epoch, trial=state == "half-opened")

    def still_admitted(self, admission: Admission) -> bool:
        """False once the circuit changed state since the call was let in."""
        return admission.epoch == self._epoch

    def succeeded(self, admission: Admission) -> None:
        self._finish(admission, failed=False)

    def failed(self, admission: Admission) -> None:
        self._finish(admission, failed=True)

    def abandoned(self, admission: Admission) -> None:
        """The call ended without telling anything about the operator's health."""
        if admission.trial and self.still_admitted(admission):
            self._trial_running = False  # the next call is the trial

    def _finish(self, admission: Admission, *, failed: bool) -> None:
        if not self.still_admitted(admission):
            return
        if admission.trial:
            self._trial_running = False
            if failed:
                self._open()
            else:
                self._change("closed")
            return
        now = self._clock()
        self._forget_before(now - self._settings.window_s)
        self._outcomes.append((now, failed))
        self._failures += failed
        calls = len(self._outcomes)
        if (failed and calls >= self._settings.min_calls
                and self._failures >= self._settings.failure_rate * calls):
            self._open()

    def _forget_before(self, cutoff: float) -> None:
        outcomes = self._outcomes
        while outcomes and outcomes[0][0] < cutoff:
            _, failed = outcomes.popleft()
            self._failures -= failed

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._change("open")

    def _change(self, state: BreakerState) -> None:
        self._state = state
        self._epoch += 1
        self._outcomes.clear()
        self._failures = 0
        if self._on_change is not None:
            self._on_change(state)
