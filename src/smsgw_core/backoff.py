"""How long to wait before trying again, and how many tries in all: one rule for every loop.

Each loop that tries again after a failure takes its pauses and its number of
tries from a `Backoff`, with its own figures beside it:
- a transaction the database gave up for another (transactions.py, CONFLICTS);
- a publish the bus refused (outbox.py, PUBLISH; the pause is stored, not slept);
- the relay's next pass after one failed (smsgw_app/workers.py);
- a delivery its handler failed, handed back to the queue (the consumers);
- an operator's send that failed transiently (resilience/breaker.py).

The pause after the n-th failure in a row grows from `first` by `factor`, up to
`ceiling`; chance then moves it (so that calls that failed together do not try
again in lockstep), in one of two ways or both, from one draw r in [0, 1):

    pause(n) = min(ceiling, first * factor ** (n - 1) + jitter_s * r)
               * (1 - jitter * (1 - r))

`jitter_s` adds up to that many seconds before the ceiling (tenacity's
`wait_exponential_jitter`); `jitter` is the share of the pause left to chance:
at 1.0 the pause is anywhere in [0, pause) ("full jitter"). Times are seconds.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float  # the pause after the first failure
    ceiling: float  # no pause is longer
    factor: float = 2.0  # each failure in a row multiplies the pause by this
    jitter: float = 0.0  # share of the pause left to chance, in [0, 1]
    jitter_s: float = 0.0  # seconds, at most, added by chance before the ceiling
    attempts: int | None = None  # tries in all, the first included; None: never gives up
    # Uniform in [0, 1): a test passes a constant to see the extremes.
    random: Callable[[], float] = field(default=_random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.first <= self.ceiling < math.inf:
            raise ValueError("a backoff needs 0 <= first <= ceiling, the ceiling finite")
        if self.factor < 1:
            raise ValueError("a backoff's factor is at least 1: pauses never shrink")
        if not 0 <= self.jitter <= 1 or self.jitter_s < 0:
            raise ValueError("jitter is a share in [0, 1], jitter_s a positive time")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    @classmethod
    def every(cls, seconds: float) -> Backoff:
        """The same pause after every failure, never giving up."""
        return cls(first=seconds, factor=1.0, ceiling=seconds)

    def tries_again(self, failures: int) -> bool:
        """Whether another try follows `failures` failures in a row."""
        return self.attempts is None or failures < self.attempts

    def pause(self, failures: int) -> float:
        """The pause after the `failures`-th failure in a row, before chance moves it
        (`failures` below 1 counts as 1)."""
        return min(self.ceiling, self._grown(failures))

    def delay(self, failures: int) -> float:
        """The pause after the `failures`-th failure in a row, chance included."""
        if not (self.jitter or self.jitter_s):
            return self.pause(failures)
        r = self.random()
        added = min(self.ceiling, self._grown(failures) + self.jitter_s * r)
        return added * (1.0 - self.jitter * (1.0 - r))

    def _grown(self, failures: int) -> float:
        try:
            return self.first * self.factor ** (max(failures, 1) - 1)
        except OverflowError:  # long past the ceiling (a broker down for days)
            return math.inf if self.first else 0.0
