"""The operators' shared schedule in memory, as the SQL one keeps it."""

from __future__ import annotations

from collections.abc import Callable


class InMemoryCapacity:
    def __init__(self, ticks: Callable[[], float]) -> None:
        self.ticks = ticks
        self.next_free: dict[str, float] = {}
        self.reservations = 0
        self.fail_with: Exception | None = None

    async def reserve(self, operator: str, sends: int, per_s: float) -> float:
        if self.fail_with is not None:
            raise self.fail_with
        self.reservations += 1
        now = self.ticks()
        start = max(self.next_free.get(operator, now), now)
        self.next_free[operator] = start + sends / per_s
        return start - now
