"""An operator's throughput cap, shared by every worker process: sends go no faster
than `per_s` in all.

Each process reserves the operator's capacity a small batch at a time (a
tenth of a second's worth) from a schedule every process shares (the
OperatorCapacity port: one row per operator in the database, whose clock
alone decides). A reservation is a time slot: the batch's sends may go from
its start on, one every 1/per_s seconds. So over any window the operator gets
at most per_s times the window, plus one batch per process reserved and not yet
used; capacity a process reserved and did not use is lost, never lent.

Over the cap, a send waits for its slot at that operator: it does not spill to
the next one (the order of SMSGW_OPERATORS is a preference, often a price).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable

from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms
from smsgw_core.ports import Operator, OperatorCapacity

BATCH_S = 0.1  # a reservation: this many seconds of the operator's capacity


class PacedOperator:
    def __init__(self, inner: Operator, capacity: OperatorCapacity, per_s: float,
                 ticks: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 batch_s: float = BATCH_S) -> None:
        if not per_s > 0:
            raise ValueError("an operator's cap is a positive number of sends per second")
        self.inner = inner
        self.capacity = capacity
        self.per_s = per_s
        self.ticks = ticks  # monotonic seconds
        self.sleep = sleep
        self.batch = max(1, math.ceil(per_s * batch_s))
        self._slots: deque[float] = deque()  # when each reserved send may go (ticks)
        self._reserving = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    async def send(self, sms: OutgoingSms) -> str:
        wait = await self._slot() - self.ticks()
        if wait > 0:
            await self.sleep(wait)
        return await self.inner.send(sms)

    async def _slot(self) -> float:
        async with self._reserving:  # one reservation in flight per process and operator
            if not self._slots:
                try:
                    delay = await self.capacity.reserve(self.name, self.batch, self.per_s)
                except Exception as exc:
                    # Unknown capacity: not sent, tried again later like an operator's
                    # own transient failure.
                    raise OperatorError(self.name, ErrorClass.TRANSIENT,
                                        f"cannot reserve capacity: {exc!r}") from exc
                start = self.ticks() + max(0.0, delay)
                self._slots.extend(start + n / self.per_s for n in range(self.batch))
            return self._slots.popleft()
