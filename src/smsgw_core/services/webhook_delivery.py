"""Delivering webhook events: fair turns per customer, a cap on each, nothing lost.

Each pass reads the customers with due events (the one waiting longest first)
and leases each up to its free share of `per_customer` slots, within the
process's `concurrency`: a customer whose endpoint hangs holds at most its
own slots for the timeout while every other customer's events go on. Only
leased events are in memory, so a customer failing for hours costs rows in
the database, not memory here.

An attempt's outcome is recorded after the endpoint answered; a process killed
between the two leaves the event leased, due again when the lease ends, and it
is sent again with the same `webhook-id` (at least once, as the spec expects).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from smsgw_core.errors import StorageUnavailable, TransientConflict
from smsgw_core.ports import Clock, SecretBox, UnitOfWork, UnitOfWorkFactory, WebhookSender
from smsgw_core.transactions import in_transaction
from smsgw_core.webhooks import (
    RETRY_DELAYS,
    Attempt,
    Endpoint,
    EventOutcome,
    EventState,
    WebhookEvent,
    outcome,
)

log = logging.getLogger("smsgw.webhooks")


class WebhookTelemetry(Protocol):
    def webhook_attempt(self, state: EventState, status_code: int | None,
                        seconds: float) -> None:
        """An attempt recorded: what its event is now, the endpoint's code (None: no
        answer), how long it took."""

    def webhook_disabled(self) -> None:
        """An endpoint disabled by a 410."""

    def webhook_oldest(self, seconds: float) -> None:
        """The age of the oldest pending event (0: none)."""


class NoWebhookTelemetry:
    def webhook_attempt(self, state: EventState, status_code: int | None,
                        seconds: float) -> None:
        return None

    def webhook_disabled(self) -> None:
        return None

    def webhook_oldest(self, seconds: float) -> None:
        return None


@dataclass
class WebhookDelivery:
    uow: UnitOfWorkFactory
    clock: Clock
    sender: WebhookSender
    box: SecretBox
    telemetry: WebhookTelemetry = field(default_factory=NoWebhookTelemetry)
    concurrency: int = 128  # attempts in flight in this process
    per_customer: int = 16  # of which one customer's
    lease: timedelta = timedelta(seconds=60)  # > the sender's timeout
    poll_s: float = 0.2  # how often to look for due events when idle
    pass_every_s: float = 0.1  # passes that start few attempts: at most 10 a second
    retries: tuple[timedelta, ...] = RETRY_DELAYS  # SMSGW_WEBHOOK_RETRY_S
    jitter: Callable[[], float] = field(default=lambda: random.uniform(-1.0, 1.0))
    _tasks: dict[asyncio.Task[EventOutcome], int] = field(default_factory=dict, init=False)
    _done: list[EventOutcome] = field(default_factory=list, init=False)
    _gone: set[int] = field(default_factory=set, init=False)  # customers answered 410
    due_every_s: float = 1.0  # how often the list of customers with due events is read
    _due_list: list[int] = field(default_factory=list, init=False)
    _due_read: float | None = field(default=None, init=False)

    async def run(self, stop: asyncio.Event, oldest_every_s: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        next_oldest = 0.0
        try:
            while not stop.is_set():
                passed_at = loop.time()
                try:
                    started = await self.start_due()  # records ended attempts as it leases
                    await self.record()  # what is left when nothing was leased
                    if loop.time() >= next_oldest:
                        next_oldest = loop.time() + oldest_every_s
                        await self.report_oldest()
                except (StorageUnavailable, TransientConflict) as exc:
                    log.warning("webhook pass failed, tried again", extra={"error": str(exc)})
                    started = 0
                await self._wait(stop, started, passed_at)
        finally:
            await self.drain()

    async def _wait(self, stop: asyncio.Event, started: int, passed_at: float) -> None:
        """Until an attempt ends (a slot frees), or the poll time passes; and, unless the
        last pass filled half the slots, at least `pass_every_s` after it began. A pass
        (its lease and its records, one transaction) costs much the same for 1 event as
        for 40: were each ended attempt to start one, a steady trickle of events would
        pay that cost for every event."""
        if not started or len(self._tasks) >= self.concurrency:
            waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(stop.wait())}
            waiters.update(self._tasks)  # type: ignore[arg-type]
            await asyncio.wait(waiters, timeout=self.poll_s,
                               return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                if w not in self._tasks:
                    w.cancel()
        if started >= self.concurrency // 2:
            return  # a backlog, not a trickle: passes are full, their cost shared already
        rest = passed_at + self.pass_every_s - asyncio.get_running_loop().time()
        if rest > 0 and not stop.is_set():
            await asyncio.sleep(rest)

    async def drain(self) -> None:
        """Let the attempts in flight end, and record them (on a stop)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        await self.record()

    async def start_due(self) -> int:
        """Lease due events, in fair turns, into free slots; how many were started.
        One transaction leases every customer's share and reads their endpoints."""
        started, fresh = 0, False
        while not fresh:  # a second round only when a list read earlier ran short
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                break
            now = self.clock.now()
            customers, fresh = await self._due(now)
            busy: dict[int, int] = {}
            for customer in self._tasks.values():
                busy[customer] = busy.get(customer, 0) + 1
            rooms: dict[int, int] = {}
            for customer in customers:
                room = min(self.per_customer - busy.get(customer, 0),
                           free - sum(rooms.values()))
                if room > 0:
                    rooms[customer] = room
                if sum(rooms.values()) >= free:
                    break
            if not rooms:
                break
            events, endpoints = await self._claim(rooms, now)
            taken: dict[int, list[WebhookEvent]] = {}
            for event in events:
                taken.setdefault(event.customer_id, []).append(event)
            # A customer that had fewer due than its room has none left: out of the list,
            # so its place goes to the next one until the list is read again.
            self._due_list = [c for c in self._due_list
                              if c not in rooms or len(taken.get(c, ())) >= rooms[c]]
            started += sum([self._start(customer, endpoints.get(customer), owed, now)
                            for customer, owed in taken.items()])
            if len(events) >= free:
                break
        return started

    async def _claim(self, rooms: dict[int, int], now: datetime,
                     ) -> tuple[list[WebhookEvent], dict[int, Endpoint]]:
        """Lease, and record the attempts ended so far in the same transaction (one
        commit a pass rather than two)."""
        done, gone = list(self._done), set(self._gone)

        async def body(uow: UnitOfWork) -> tuple[list[WebhookEvent], dict[int, Endpoint]]:
            await self._finish(uow, done, gone, now)
            events = await uow.webhooks.claim_many(rooms, now, now + self.lease)
            endpoints = await uow.webhooks.endpoints({e.customer_id for e in events})
            await uow.commit()
            return events, endpoints

        claimed = await in_transaction(self.uow, body)
        self._recorded(done, gone)
        return claimed

    async def _due(self, now: datetime) -> tuple[list[int], bool]:
        """The customers with due events, longest due first, and whether that was read
        now: read at most every `due_every_s` while it names customers (a read groups
        every pending event, its cost grows with the backlog), at once when it is
        empty."""
        t = asyncio.get_running_loop().time()
        if (self._due_read is None or not self._due_list
                or t - self._due_read >= self.due_every_s):
            async with self.uow() as uow:
                self._due_list = await uow.webhooks.due(now, self.concurrency)
            self._due_read = t
            return self._due_list, True
        return self._due_list, False

    def _start(self, customer: int, endpoint: Endpoint | None, events: list[WebhookEvent],
               now: datetime) -> int:
        if endpoint is None or endpoint.disabled_at is not None:
            why = "no endpoint" if endpoint is None else "endpoint disabled"
            self._done.extend(EventOutcome(e.id, Attempt(now, None, why), EventState.DEAD)
                              for e in events)
            return 0
        try:
            secrets = [self.box.open(s) for s in endpoint.sealed_secrets(now)]
        except ValueError as exc:
            # Sealed under another key (SMSGW_WEBHOOK_KEY differs between processes):
            # the events stay leased and come back after it, for a process that can.
            log.error("cannot open a webhook secret: is SMSGW_WEBHOOK_KEY the one the API "
                      "sealed it with?", extra={"user_id": customer, "error": str(exc)})
            return 0
        for event in events:
            task = asyncio.create_task(self._attempt(endpoint.url, event, secrets))
            self._tasks[task] = customer
            task.add_done_callback(self._ended)
        return len(events)

    async def _attempt(self, url: str, event: WebhookEvent, secrets: list[str]) -> EventOutcome:
        at = self.clock.now()
        try:
            attempt = await self.sender.send(url, event.id, event.body, secrets, at)
        except Exception as exc:  # a bug of ours: the event still runs its schedule out
            log.exception("webhook attempt raised", extra={"event_id": event.id})
            attempt = Attempt(at, None, f"internal error: {type(exc).__name__}")
        return outcome(event, attempt, self.jitter(), self.retries)

    def _ended(self, task: asyncio.Task[EventOutcome]) -> None:
        customer = self._tasks.pop(task)
        if task.cancelled():
            return  # the lease brings it back
        exc = task.exception()
        if exc is not None:
            log.error("webhook attempt failed", exc_info=exc)
            return
        result = task.result()
        self._done.append(result)
        if result.attempt.gone:
            self._gone.add(customer)

    async def record(self) -> int:
        """Commit the outcomes of ended attempts (and disable endpoints that answered
        410); kept for the next pass if the database is away."""
        done, gone = list(self._done), set(self._gone)
        if not done and not gone:
            return 0
        now = self.clock.now()

        async def body(uow: UnitOfWork) -> None:
            await self._finish(uow, done, gone, now)
            await uow.commit()

        await in_transaction(self.uow, body)
        self._recorded(done, gone)
        return len(done)

    @staticmethod
    async def _finish(uow: UnitOfWork, done: list[EventOutcome], gone: set[int],
                      now: datetime) -> None:
        await uow.webhooks.finish(done)
        for customer in sorted(gone):
            await uow.webhooks.disable(customer, now, "410 Gone from the endpoint")

    def _recorded(self, done: list[EventOutcome], gone: set[int]) -> None:
        """After the commit of `done` and `gone`: off the lists, into the metrics."""
        del self._done[: len(done)]
        self._gone -= gone
        for o in done:
            self.telemetry.webhook_attempt(o.state, o.attempt.status_code, o.attempt.seconds)
        for customer in gone:
            self.telemetry.webhook_disabled()
            log.warning("webhook endpoint disabled: it answered 410",
                        extra={"user_id": customer})

    async def report_oldest(self) -> None:
        async with self.uow() as uow:
            oldest = await uow.webhooks.oldest_pending()
        age = 0.0 if oldest is None else (self.clock.now() - oldest).total_seconds()
        self.telemetry.webhook_oldest(max(0.0, age))
