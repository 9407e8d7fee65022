"""An in-process bus for embedded mode.

A bounded priority queue: express deliveries are taken before any waiting normal
one, and a full queue makes the relay wait, so the backlog stays in the outbox
(durable) rather than in memory. Nothing here survives a crash; the outbox's
redrive re-publishes what was in flight when the process died.

For metrics, an optional observer hears of every delivery put on the bus and
every one handled, under a queue name per type (`inprocess-express`,
`inprocess-normal`): the in-process counterparts of the RabbitMQ queues.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Protocol

from smsgw_core.messages import MessageType
from smsgw_core.outbox import DeliveryJob

QUEUES = {kind: f"inprocess-{kind.value}" for kind in MessageType}


class BusObserver(Protocol):
    def published(self, queue: str) -> None: ...

    def consumed(self, queue: str) -> None: ...


class InProcessBus:
    def __init__(self, capacity: int = 10_000, observer: BusObserver | None = None) -> None:
        self._queue: asyncio.PriorityQueue[tuple[int, int, DeliveryJob]] = asyncio.PriorityQueue(
            capacity
        )
        self._order = itertools.count()
        self._observer = observer
        self._ready = dict.fromkeys(MessageType, 0)

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(QUEUES.values())

    async def publish(self, deliveries: Sequence[DeliveryJob]) -> None:
        for delivery in deliveries:
            await self._queue.put((-delivery.priority, next(self._order), delivery))
            self._ready[delivery.type] += 1
            if self._observer is not None:
                self._observer.published(QUEUES[delivery.type])

    async def take(self) -> DeliveryJob:
        _, _, delivery = await self._queue.get()
        self._ready[delivery.type] -= 1
        return delivery

    def done(self, handled: DeliveryJob | None = None) -> None:
        """Close out a taken delivery; pass it when it was handled, to count it consumed."""
        self._queue.task_done()
        if handled is not None and self._observer is not None:
            self._observer.consumed(QUEUES[handled.type])

    async def start(self) -> None:
        return None  # nothing to connect to

    async def close(self) -> None:
        return None  # what it holds is lost; the outbox's redrive has it at the next start

    def is_connected(self) -> bool:
        return True  # in the process itself: never away

    async def backlog(self) -> dict[MessageType, int]:
        """Deliveries waiting for a worker (published, not yet taken), per lane."""
        return dict(self._ready)
