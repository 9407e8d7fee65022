"""The background loops of `smsgw serve`: the outbox relay and the delivery workers."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from smsgw_adapters.inprocess import InProcessBus
from smsgw_app.wakeup import Wakeup
from smsgw_core.services.deliver import Deliverer
from smsgw_core.services.relay import OutboxRelay

log = logging.getLogger("smsgw.workers")

POLL_S = 0.5  # the relay's fallback poll; a commit in this process wakes it at once
ERROR_BACKOFF_S = 1.0


@dataclass
class RelayLoop:
    relay: OutboxRelay
    wakeup: Wakeup
    redrive_after: timedelta

    async def run(self) -> None:
        # Nothing was in the in-process bus before this process started, so
        # whatever was published but unfinished was lost with the last one.
        await self._redrive(timedelta(0))
        last_redrive = asyncio.get_running_loop().time()
        while True:
            try:
                report = await self.relay.relay_once()
            except Exception:
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(ERROR_BACKOFF_S)
                continue
            now = asyncio.get_running_loop().time()
            if now - last_redrive >= self.redrive_after.total_seconds():
                await self._redrive(self.redrive_after)
                last_redrive = now
            if report.published == 0:
                await self.wakeup.wait(POLL_S)

    async def _redrive(self, stalled_for: timedelta) -> None:
        try:
            count = await self.relay.redrive(stalled_for)
        except Exception:
            log.exception("outbox redrive failed")
            return
        if count:
            log.warning("redrive: requeued %d SMS with unfinished recipients", count)


@dataclass
class DeliveryWorker:
    bus: InProcessBus
    deliverer: Deliverer

    async def run(self) -> None:
        while True:
            delivery = await self.bus.take()
            try:
                await self.deliverer.deliver(delivery)
            except Exception:
                # Left unfinished on purpose: the relay's redrive publishes it again.
                log.exception("delivery of %s failed", delivery.sms_identifier)
                await asyncio.sleep(ERROR_BACKOFF_S)
            finally:
                self.bus.done()
