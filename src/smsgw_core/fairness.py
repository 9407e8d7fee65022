"""Fair share of delivery across customers: deficit round robin, weighted by recipients.

When more normal traffic waits than the operators can take, the order it goes
in decides who waits. First come, first served hands the whole gateway to
whoever queued most; here each customer with waiting work gets an equal share
of recipients, and whatever a customer does not use goes to the others (a
lone sender still gets everything: the order is work-conserving).

Deficit round robin (Shreedhar and Varghese, 1995): each round every waiting
customer's allowance grows by a quantum of recipients, and the customer's
oldest SMS go while they fit in its allowance. A customer whose queue empties
loses its allowance, so idling earns no credit. The allowances outlive one
pick: an SMS of 1,000 recipients goes once its customer has saved up for it,
while a customer of single-recipient SMS goes every round.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

# Recipients a round adds to each waiting customer's allowance: one, so that in
# every pick each waiting customer's next single-recipient SMS is among the
# first; rounds in which no one can afford its next SMS are skipped at once.
QUANTUM = 1


@dataclass(frozen=True, slots=True)
class Waiting:
    """An SMS waiting to be delivered, as the fair order sees it."""

    event_id: int
    customer_id: int
    recipients: int


class FairShare:
    def __init__(self, quantum: int = QUANTUM) -> None:
        if quantum < 1:
            raise ValueError("the quantum is at least one recipient")
        self.quantum = quantum
        self._allowance: dict[int, int] = {}
        self._last = -1  # the last customer served: the next round starts after it

    @property
    def last_served(self) -> int:
        """The customer served last (-1: none yet): the next pick starts after it."""
        return self._last

    def pick(self, waiting: Iterable[Waiting], room: int,
             size: Callable[[Waiting], int] = lambda sms: 1) -> list[Waiting]:
        """Waiting SMS (each customer's in the order given) in the order they should
        go, as many as fill `room`: each takes `size` of it (1: room counts SMS),
        and the first always goes."""
        queues: dict[int, deque[Waiting]] = {}
        for sms in waiting:
            queues.setdefault(sms.customer_id, deque()).append(sms)
        # Customers not waiting now start from nothing when they come back.
        self._allowance = {c: a for c, a in self._allowance.items() if c in queues}
        ring = sorted(queues)
        start = next((i for i, c in enumerate(ring) if c > self._last), 0)
        ring = ring[start:] + ring[:start]
        picked: list[Waiting] = []
        used, full = 0, False
        while ring and used < room and not full:
            # Rounds in which no one could afford its next SMS add the same to
            # everyone: skip them at once (an SMS of 1,000 recipients needs 1,000).
            short = min(max(0, queues[c][0].recipients - self._allowance.get(c, 0))
                        for c in ring)
            skipped = max(0, -(-short // self.quantum) - 1)
            still: list[int] = []
            for customer in ring:
                queue = queues[customer]
                allowance = self._allowance.get(customer, 0) + self.quantum * (skipped + 1)
                while (queue and queue[0].recipients <= allowance
                       and (not picked or used + size(queue[0]) <= room)):
                    sms = queue.popleft()
                    allowance -= sms.recipients
                    picked.append(sms)
                    used += size(sms)
                    self._last = customer
                # Affordable but too big for what is left of the room: the pick is done.
                full = bool(queue) and queue[0].recipients <= allowance
                if queue:
                    self._allowance[customer] = allowance
                    still.append(customer)
                else:
                    self._allowance.pop(customer, None)
                if used >= room or full:
                    # The customers after this one in the ring keep their turn.
                    still.extend(c for c in ring[ring.index(customer) + 1:] if queues[c])
                    break
            ring = still
        return picked


class Headroom:
    """How many deliveries a lane's queue may hold: enough that the workers never
    find it empty between two of the relay's refills, and no more, since an SMS
    published behind them waits for all of them (the fair order is the outbox's).

    Adjusted at each refill from what the queue held: found empty after a full
    refill (more was waiting), the queue ran dry, so the target doubles; found
    over half full, the workers took less than half of it, so it shrinks by a
    tenth. Nothing to estimate across relays: each reads the same queue.
    """

    def __init__(self, ceiling: int, floor: int = 4) -> None:
        if not 1 <= floor <= ceiling:
            raise ValueError("the headroom is 1 <= floor <= ceiling")
        self.floor, self.ceiling = floor, ceiling
        self.target = float(floor)
        self._filled = False  # the last refill was cut short by the target

    def room(self, ready: int) -> int:
        """Deliveries to publish now, with `ready` in the queue."""
        if ready == 0 and self._filled:
            self.target = min(float(self.ceiling), self.target * 2)
        elif ready > self.target / 2:
            self.target = max(float(self.floor), self.target * 0.9)
        return max(0, round(self.target) - ready)

    def published(self, count: int, room: int) -> None:
        self._filled = count >= room > 0


class FairGate:
    """At most `slots` holders at once; those waiting are let in one customer at a
    time, round robin (each customer's own in the order they came).

    A worker's operator calls: a customer with a thousand recipients in flight
    would otherwise queue a thousand calls ahead of another customer's one
    (asyncio's Semaphore is first come, first served).
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a gate has at least one slot")
        self._free = slots
        self._waiting: OrderedDict[int, deque[asyncio.Future[None]]] = OrderedDict()

    @asynccontextmanager
    async def slot(self, customer: int) -> AsyncIterator[None]:
        await self._acquire(customer)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, customer: int) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(customer, deque()).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # let in, then cancelled: the slot goes to the next
            else:
                queue = self._waiting.get(customer)
                if queue is not None and granted in queue:
                    queue.remove(granted)
                    if not queue:
                        del self._waiting[customer]
            raise

    def _release(self) -> None:
        while self._waiting:
            customer, queue = next(iter(self._waiting.items()))
            granted = queue.popleft()
            if queue:
                self._waiting.move_to_end(customer)  # its next waits for the others' turn
            else:
                del self._waiting[customer]
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1
