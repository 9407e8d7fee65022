"""Concurrent calls share one database transaction: group commit.

A durable commit is a disk flush and every statement a round trip, so one
transaction per request makes them the ceiling. Calls that arrive while
earlier ones are in the database wait, and the next free slot takes them all
at once: one transaction, one flush, one round of locks for the whole group.
Nothing waits on a timer: under light load a call goes alone and at once;
under heavy load the groups grow by themselves.

The accept path (`GroupCommit`) and the delivery path (the Deliverer's
claims and outcomes) use it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_GROUP = 200  # calls per transaction: bounds the statements' size and a lock's hold
MAX_IN_FLIGHT = 2  # transactions at once: one fills while the other flushes

# Answers each item of a group, in order: a result, or the exception for that item alone.
# Raising fails every item of the group.
GroupHandler = Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]]


@dataclass
class Coalescer(Generic[T, R]):
    handle: GroupHandler[T, R]
    max_group: int = MAX_GROUP
    max_in_flight: int = MAX_IN_FLIGHT
    _waiting: deque[tuple[T, asyncio.Future[R]]] = field(default_factory=deque, init=False)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    async def submit(self, item: T) -> R:
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        self._start_groups()
        return await answer

    def _start_groups(self) -> None:
        while self._waiting and len(self._in_flight) < self.max_in_flight:
            group = [self._waiting.popleft()
                     for _ in range(min(self.max_group, len(self._waiting)))]
            task = asyncio.create_task(self._run(group))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._start_groups()

    async def _run(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            answers = await self.handle([item for item, _ in group])
        except BaseException as exc:  # e.g. the database failed: every call of the group fails
            for _, answer in group:
                if not answer.done():
                    answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, answer), result in zip(group, answers, strict=True):
            if answer.done():  # its caller was cancelled (e.g. the client went away)
                continue
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)
