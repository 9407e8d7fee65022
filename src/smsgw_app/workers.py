"""The background services: outbox relays, the outbox janitor, the delivery consumer,
the outbox backlog monitor, the API's writer of keys' last use, the webhook
delivery loop and the metrics server of processes without the API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from smsgw_adapters.bus import Consumer
from smsgw_adapters.observability import MetricsHttpServer
from smsgw_app.wakeup import Wakeup
from smsgw_core.backoff import Backoff
from smsgw_core.messages import MessageType
from smsgw_core.ports import Backlog, Clock, UnitOfWorkFactory
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.webhook_delivery import WebhookDelivery

log = logging.getLogger("smsgw.workers")

# The relay's fallback poll: a commit in this process wakes it at once, but the
# API's commits reach a relay in another process only by its poll. Express is
# promised a time to the operator, so its lane looks often; each wait is
# jittered so that a lane's tasks do not all look at the same moment.
POLL_S = 0.5
EXPRESS_POLL_S = 0.1
# A pass that failed (the database or the bus away) is followed by the next one
# a second later, however many failed before it.
RELAY_AFTER_ERROR = Backoff.every(1.0)
# A lane whose queue is full (SMSGW_RELAY_AHEAD) looks again this soon: the
# workers drain it in well under a second, and the relay must refill it before
# it runs dry. So does a relay whose pick another relay claimed first: the lane
# has work (waiting the idle poll instead left the queue empty for up to half a
# second while several relays shared a backlog).
THROTTLED_POLL_S = 0.02


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


@dataclass
class RelayService:
    """One relay task; a process runs a pool of them per lane (express, normal)."""

    name: str
    relay: OutboxRelay
    wakeup: Wakeup
    poll_s: float = POLL_S
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    after_error: Backoff = RELAY_AFTER_ERROR

    async def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                report = await self.relay.relay_once()
            except Exception:
                failures += 1
                log.exception("%s failed; retrying", self.name)
                await _pause(self.stopping, self.after_error.delay(failures))
                continue
            failures = 0
            if (report.throttled or report.contended) and not self.stopping.is_set():
                await _pause(self.stopping, THROTTLED_POLL_S)
            elif report.published == 0 and not self.stopping.is_set():
                await self.wakeup.wait(self.poll_s * random.uniform(0.5, 1.0))

    def stop(self) -> None:
        self.stopping.set()
        self.wakeup.notify()


QuietLanes = Callable[[], Awaitable[Collection[MessageType]]]


async def no_quiet_lanes() -> Collection[MessageType]:
    return ()


@dataclass
class OutboxJanitor:
    """Every `every`: requeues SMS whose delivery was lost, and purges finished events.

    Lost: a recipient SENDING past its lease (its worker died or was cut off), or
    still PENDING `redrive_after` after publishing while its lane's queue holds
    nothing (`quiet_lanes` asks the bus), so the message was dropped or
    dead-lettered. A recipient therefore sits unnoticed at most `every` past its
    lease, or past `redrive_after` once its queue has drained.
    """

    relay: OutboxRelay
    redrive_after: timedelta
    retention: timedelta
    redrive_at_start: bool  # the in-process bus lost whatever it held at the last stop
    quiet_lanes: QuietLanes = no_quiet_lanes
    # Drops the receipts kept past the orphan time, a batch a call (how many).
    orphans: Callable[[], Awaitable[int]] | None = None
    every: timedelta = timedelta(seconds=10)
    name: str = "outbox-janitor"
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        if self.redrive_at_start:
            await self._redrive(timedelta(0), all_quiet=True)
        while not self.stopping.is_set():
            await _pause(self.stopping, self.every.total_seconds())
            if self.stopping.is_set():
                break
            await self._redrive(self.redrive_after)
            try:
                while await self.relay.purge(self.retention) and not self.stopping.is_set():
                    pass
            except Exception:
                log.exception("outbox purge failed")
            if self.orphans is not None:
                try:
                    while await self.orphans() and not self.stopping.is_set():
                        pass
                except Exception:
                    log.exception("dropping orphan receipts failed")

    async def _redrive(self, stalled_for: timedelta, all_quiet: bool = False) -> None:
        try:
            quiet = list(MessageType) if all_quiet else await self.quiet_lanes()
        except Exception as exc:  # the broker is away: judge by the leases alone
            log.warning("cannot read the queues (%r); redriving by leases only", exc)
            quiet = []
        try:
            count = await self.relay.redrive(stalled_for, quiet)
        except Exception:
            log.exception("outbox redrive failed")
            return
        if count:
            log.warning("redrive: requeued %d SMS with unfinished recipients", count)

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class ConsumerService:
    """Runs a bus's consumer; on stop, lets it finish or hand back what it holds.

    What a stopped consumer did not finish is delivered again: RabbitMQ
    redelivers unacked messages, the outbox's redrive re-publishes the rest.
    """

    consumer: Consumer
    shutdown_timeout_s: float
    name: str = "consumer"
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        await self.consumer.start()
        try:
            await self.stopping.wait()
        finally:
            # within the supervisor's own bound, leaving it time to close the rest
            await self.consumer.stop(max(1.0, self.shutdown_timeout_s - 2))

    def stop(self) -> None:
        self.stopping.set()


BacklogSink = Callable[[Sequence[Backlog], datetime], None]


@dataclass
class BacklogMonitor:
    """Reads the due outbox backlog every `every` seconds and hands it to each sink.

    The sinks are the backlog gauges (relay and serve processes) and the API's
    backpressure gate (api and serve). A failed reading is logged once per
    outage; the sinks keep the last good one.
    """

    uow: UnitOfWorkFactory
    clock: Clock
    sinks: Sequence[BacklogSink]
    every: float = 5.0
    name: str = "backlog-monitor"
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        failing = False
        while not self.stopping.is_set():
            try:
                await self.refresh()
            except Exception as exc:
                if not failing:
                    log.warning("cannot read the outbox backlog (%r); keeping the last reading",
                                exc)
                failing = True
            else:
                if failing:
                    log.info("reading the outbox backlog again")
                failing = False
            await _pause(self.stopping, self.every)

    async def refresh(self) -> None:
        now = self.clock.now()
        async with self.uow() as uow:
            backlog = await uow.outbox.backlog(now)
        for sink in self.sinks:
            sink(backlog, now)

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class KeyUsageWriter:
    """Writes the keys' last uses every `every` seconds, and once more at stop
    (`smsgw keys list` shows them); a failed write is retried at the next."""

    flush: Callable[[], Awaitable[int]]  # Authenticator.flush_usage
    every: float = 5.0
    name: str = "key-usage"
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.stopping.is_set():
            await _pause(self.stopping, self.every)
            try:
                await self.flush()
            except Exception as exc:
                log.warning("cannot write the keys' last use (%r); trying again in %.0f s",
                            exc, self.every)

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class MetricsServer:
    """The process's metrics on a port of their own (`smsgw relay`, `smsgw worker`).

    The server is bound before the process starts its services (see
    processes.metrics_server) and closed when the process stops.
    """

    server: MetricsHttpServer
    name: str = "metrics-http"
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        try:
            await self.stopping.wait()
        finally:
            await asyncio.to_thread(self.server.close)

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class WebhookService:
    """The webhook delivery loop (`smsgw webhooks`, and `serve`); its HTTP client is
    closed when it stops."""

    delivery: WebhookDelivery
    close: Callable[[], Awaitable[None]]
    name: str = "webhooks"
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    await self.delivery.run(self.stopping)
                except Exception:
                    log.exception("webhook delivery failed; starting again")
                    await _pause(self.stopping, 1.0)
        finally:
            await self.close()

    def stop(self) -> None:
        self.stopping.set()
