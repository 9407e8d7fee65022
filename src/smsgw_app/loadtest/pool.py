"""The connection pool: one slot per connection, spread round-robin over the URLs.

Idle slots wait on a stack per URL: the one freed last is used first, so a hot
set of connections stays warm while the rest idle.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from smsgw_app.loadtest.client import HttpConnection, RequestError, Target


class Answers(Protocol):
    """Who hears a slot's answers: the load generator."""

    def answered(self, slot: Slot, status: int, body: bytes) -> None: ...

    def failed(self, slot: Slot, error: RequestError) -> None: ...


class Slot:
    """One connection of the pool, to one of the URLs; its connection's listener."""

    __slots__ = ("answers", "connection", "head", "idle_since", "pool", "started", "target")

    def __init__(self, answers: Answers, target: Target, pool: int) -> None:
        self.answers = answers
        self.target = target
        self.pool = pool  # the index of its URL
        self.head = target.request_head()
        self.connection: HttpConnection | None = None
        self.idle_since = 0.0
        self.started = 0.0  # latency origin of the request in flight

    def answered(self, status: int, body: bytes) -> None:
        self.answers.answered(self, status, body)

    def failed(self, error: RequestError) -> None:
        self.answers.failed(self, error)


class NoConnection(Exception):
    """Not one connection could be opened: nothing can be sent."""


class ConnectionPool:
    """`size` slots over `targets`, and the idle ones, the URLs taking turns."""

    def __init__(self, answers: Answers, targets: list[Target], size: int) -> None:
        self.slots = [Slot(answers, targets[i % len(targets)], i % len(targets))
                      for i in range(size)]
        self._idle: list[list[Slot]] = [[] for _ in targets]
        self._turn = 0  # the URL whose turn it is to get the next due request

    async def connect_all(self, within: float) -> None:
        """Open every slot's connection; every slot is idle after, connected or not."""
        results = await asyncio.gather(
            *(slot.target.connect(within, slot) for slot in self.slots), return_exceptions=True,
        )
        failures: list[tuple[Target, BaseException]] = []
        now = time.monotonic()
        for slot, result in zip(self.slots, results, strict=True):
            if isinstance(result, HttpConnection):
                slot.connection, slot.idle_since = result, now
            elif isinstance(result, Exception):
                failures.append((slot.target, result))
            else:
                raise result
            self._idle[slot.pool].append(slot)
        if len(failures) == len(self.slots):
            target, error = failures[0]
            raise NoConnection(f"cannot connect to {target.url}: {error}")
        for pool in self._idle:
            pool.reverse()  # the first slots first

    def take_idle(self) -> Slot | None:
        """An idle slot, the URLs taking turns (skipping one with none free)."""
        pools = self._idle
        for step in range(len(pools)):
            index = (self._turn + step) % len(pools)
            if pools[index]:
                self._turn = index + 1
                return pools[index].pop()
        return None

    def take_all_idle(self) -> list[Slot]:
        idle = [slot for pool in self._idle for slot in pool]
        for pool in self._idle:
            pool.clear()
        return idle

    def put_idle(self, slot: Slot) -> None:
        self._idle[slot.pool].append(slot)

    def close(self) -> None:
        for slot in self.slots:
            if slot.connection is not None:
                slot.connection.close()
