"""Consume deliveries from the in-process bus, with the RabbitConsumer's interface.

The bus is one priority queue, so every worker takes express before normal:
there is no separate express pool here, and `express_workers + normal_workers`
workers share the queue. A handler that raises has its delivery put back on the
bus after a pause (REDELIVERY), as a broker would redeliver it; if the process
stops first, the outbox's redrive at the next start has it (nothing here survives).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from smsgw_adapters.bus import DeliveryHandler
from smsgw_adapters.inprocess.bus import InProcessBus
from smsgw_core.backoff import Backoff
from smsgw_core.outbox import DeliveryJob

log = logging.getLogger("smsgw.workers")

# A second each time: the bus keeps no count of a delivery's tries, so every
# pause is the first one (the figure of the first failure).
REDELIVERY = Backoff.every(1.0)


class InProcessConsumer:
    def __init__(
        self,
        bus: InProcessBus,
        handler: DeliveryHandler,
        *,
        express_workers: int = 4,
        normal_workers: int = 16,
        redelivery: Backoff = REDELIVERY,
    ) -> None:
        if express_workers < 0 or normal_workers < 0 or express_workers + normal_workers < 1:
            raise ValueError(
                f"at least one worker is needed, got {express_workers} express and "
                f"{normal_workers} normal"
            )
        self._bus = bus
        self._handler = handler
        self._workers = express_workers + normal_workers
        self._redelivery = redelivery
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._work(), name=f"inprocess-worker-{n}")
                       for n in range(self._workers)]

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a grace period)
        """Stop taking deliveries; give in-flight handlers `timeout` seconds to finish.

        Handlers still running then are cancelled; their recipients stay
        unfinished and the outbox's redrive delivers them again.
        """
        self._stopping.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def is_connected(self) -> bool:
        return True  # nothing between the bus and its workers can break

    async def _work(self) -> None:
        stop = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                take = asyncio.create_task(self._bus.take())
                await asyncio.wait([take, stop], return_when=asyncio.FIRST_COMPLETED)
                if not take.done():
                    take.cancel()
                    break
                await self._handle(take.result())
        finally:
            stop.cancel()

    async def _handle(self, delivery: DeliveryJob) -> None:
        handled: DeliveryJob | None = None
        try:
            await self._handler(delivery)
            handled = delivery
        except Exception:
            log.exception("delivery of %s failed; trying it again", delivery.sms_identifier)
        finally:
            self._bus.done(handled)
        if handled is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._redelivery.delay(1))
            if not self._stopping.is_set():
                await self._bus.publish([delivery])
