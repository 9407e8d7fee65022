"""An in-process bus for embedded mode.

A bounded priority queue: express deliveries are taken before any waiting normal
one, and a full queue makes the relay wait, so the backlog stays in the outbox
(durable) rather than in memory. Nothing here survives a crash; the outbox's
redrive re-publishes what was in flight when the process died.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from smsgw_core.outbox import Delivery


class InProcessBus:
    def __init__(self, capacity: int = 10_000) -> None:
        self._queue: asyncio.PriorityQueue[tuple[int, int, Delivery]] = asyncio.PriorityQueue(
            capacity
        )
        self._order = itertools.count()

    async def publish(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            await self._queue.put((-delivery.priority, next(self._order), delivery))

    async def take(self) -> Delivery:
        _, _, delivery = await self._queue.get()
        return delivery

    def done(self) -> None:
        self._queue.task_done()

    def backlog(self) -> int:
        return self._queue.qsize()
