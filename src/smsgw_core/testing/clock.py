"""A clock moved by hand and ids counted in order: tests read exact times and ids."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class FakeTicks:
    """A monotonic clock (`() -> float` seconds, as time.monotonic) moved by hand,
    for what measures intervals rather than dates: the ResilientBreaker's window."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SequentialIds:
    def __init__(self, prefix: str = "sms") -> None:
        self._counter = itertools.count(1)
        self.prefix = prefix

    def new_id(self) -> str:
        return f"{self.prefix}-{next(self._counter):08d}"
