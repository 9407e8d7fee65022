"""What was read from the database a moment ago, served from memory.

A value is read once and then served for `ttl_s` seconds, so a change made
by another process is seen within that time (plus one request's own
duration). Concurrent requests for a key not in memory share one read, in a
task of its own (a requester that leaves does not cancel the others'). The
memory is bounded: the least recently read entries go first. Absent values
(None) are remembered like any other, so made-up keys cost one read per key
and TTL.

The Authenticator keeps keys this way, the send limits each customer's rate.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_TTL_S = 1.0
DEFAULT_SIZE = 10_000


class RecentlyRead(Generic[K, V]):
    def __init__(self, read: Callable[[K], Awaitable[V]], ticks: Callable[[], float],
                 ttl_s: float = DEFAULT_TTL_S, size: int = DEFAULT_SIZE) -> None:
        self.read = read
        self.ticks = ticks  # monotonic seconds (time.monotonic in production)
        self.ttl_s = ttl_s
        self.size = size
        self._values: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._reading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K) -> V:
        now = self.ticks()
        cached = self._values.get(key)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(key, now))
            reading.add_done_callback(_retrieve)
            self._reading[key] = reading
        return await asyncio.shield(reading)

    async def _read(self, key: K, now: float) -> V:
        try:
            value = await self.read(key)
        finally:
            del self._reading[key]
        self._values[key] = (now, value)
        self._values.move_to_end(key)
        while len(self._values) > self.size:
            self._values.popitem(last=False)
        return value


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a failed read's error as seen: every requester may have left."""
    if not task.cancelled():
        task.exception()
