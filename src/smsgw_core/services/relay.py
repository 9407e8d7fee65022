"""Move committed outbox events onto the bus, express first, retrying with backoff.

Claiming is a short transaction that leases the events; publishing happens
outside any transaction; marking them published is another. A crash in between
lets the lease lapse and the events are published again: consumers are
idempotent, so at-least-once publishing is safe.

A failed publish is retried with a capped backoff, forever: only an event whose
payload cannot be a delivery is parked. An event claimed past its SMS's
validity is not published: its unfinished recipients are failed as expired and
refunded, here, in one transaction, so a long broker outage ends in refunds,
never in money held for messages that will not go.

The normal lane goes in a fair order (fairness.py): with `fair` set, each
claim picks the waiting SMS by deficit round robin across customers, weighted
by recipients; and with `headroom` set, the relay keeps the lane's queue short (just
enough that the workers never find it empty), so the order is decided here,
at the outbox, and not first come first served in the broker's queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from smsgw_core.fairness import FairShare, Headroom, Waiting
from smsgw_core.ledger import TransactionType
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.outbox import DeliveryJob, OutboxEvent, RetryPolicy, UndecodablePayload
from smsgw_core.ports import Clock, MessageBus, UnitOfWork, UnitOfWorkFactory
from smsgw_core.services.settle import Settlement, Verdict, settle
from smsgw_core.telemetry import NoTelemetry, Telemetry
from smsgw_core.transactions import in_transaction
from smsgw_core.validity import DeliveryPolicy, FailureReason

T = TypeVar("T")
MAX_PART = 1 << 30  # an SMS whole, in one delivery


@dataclass(frozen=True, slots=True)
class RelayReport:
    published: int
    retried: int
    parked: int
    expired: int = 0  # events settled without publishing: their SMS's validity had run out
    throttled: bool = False  # the lane's queue held `ahead` deliveries: nothing was claimed
    # Another relay claimed what this one picked, between its read and its claim
    # (SKIP LOCKED skips them): the lane has work, it is not idle.
    contended: bool = False


@dataclass
class OutboxRelay:
    uow: UnitOfWorkFactory
    bus: MessageBus
    clock: Clock
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    validity: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    batch_size: int = 100
    lane: MessageType | None = None  # None: every priority, express first
    telemetry: Telemetry = field(default_factory=NoTelemetry)
    fair: FairShare | None = None  # the lane's order across customers; None: oldest first
    headroom: Headroom | None = None  # what the lane's queue may hold; None: anything
    customers_per_claim: int = 64  # customers one fair claim looks at (the next ones after)
    chunk: int = 0  # recipients per published delivery at most (an SMS in parts); 0: whole
    # Shared by a lane's relays in one process with its `fair` and `headroom`: they
    # refill the lane's queue in turns. Two reading the queue's depth at once would
    # each fill it to the target, and an SMS published behind both waits for both.
    turn: asyncio.Lock | None = None

    async def relay_once(self) -> RelayReport:
        if self.turn is None:
            return await self._relay_once()
        async with self.turn:
            return await self._relay_once()

    async def _relay_once(self) -> RelayReport:
        now = self.clock.now()
        priority = None if self.lane is None else self.lane.priority
        leased_until = now + self.policy.lease
        room = self.batch_size
        if self.headroom is not None and self.lane is not None:
            room = min(room, self.headroom.room((await self.bus.backlog()).get(self.lane, 0)))
            if room <= 0:
                return RelayReport(0, 0, 0, throttled=True)
        picked: list[Waiting] = []
        if self.fair is not None and priority is not None:
            fair, lane_priority = self.fair, priority

            async def claim(uow: UnitOfWork) -> list[OutboxEvent]:
                waiting = await uow.outbox.waiting(
                    now, lane_priority, per_customer=room, customers=self.customers_per_claim,
                    after_customer=fair.last_served)
                picked[:] = fair.pick(waiting, room, size=self._parts)
                return await uow.outbox.claim([w.event_id for w in picked], now, leased_until)

            events = await self._commit(claim)
        else:
            events = await self._commit(
                lambda uow: uow.outbox.claim_due(now, room, leased_until, priority))
        if self.headroom is not None:
            self.headroom.published(sum(self._event_parts(e) for e in events), room)
        if not events:
            return RelayReport(0, 0, 0, contended=bool(picked))
        deliveries, poison = _decode(events)
        if poison:
            await self._park(poison)
            self._report(parked=[e for e, _ in poison])
        expired: list[tuple[OutboxEvent, DeliveryJob]] = []
        live: list[tuple[OutboxEvent, DeliveryJob]] = []
        for pair in deliveries:
            (expired if self.validity.expired(pair[0].created_at, now) else live).append(pair)
        if expired:
            await self._expire(expired)
        deliveries = live
        if not deliveries:
            return RelayReport(0, 0, len(poison), len(expired))
        good = [event for event, _ in deliveries]
        try:
            await self.bus.publish([part for _, delivery in deliveries
                                    for part in delivery.chunks(self.chunk or MAX_PART)])
        except Exception as exc:  # any bus failure: the events wait and try again
            await self._failed(good, repr(exc))
            self._report(failed=good)
            return RelayReport(0, len(good), len(poison), len(expired))
        # A fast worker may already have deferred some (pending again): those stay so.
        published_at = self.clock.now()
        await self._commit(lambda uow: uow.outbox.mark_published(
            [e.id for e in good], published_at, leased_until
        ))
        self._report(published=good)
        return RelayReport(len(good), 0, len(poison), len(expired))

    def _parts(self, sms: Waiting) -> int:
        """The deliveries an SMS is published as: what it takes of the lane's queue."""
        return -(-sms.recipients // self.chunk) if self.chunk else 1

    def _event_parts(self, event: OutboxEvent) -> int:
        content = event.content
        recipients = 1 if isinstance(content, UndecodablePayload) else len(content.recipients)
        return self._parts(Waiting(event.id, 0, max(1, recipients)))

    def _report(
        self,
        published: Sequence[OutboxEvent] = (),
        failed: Sequence[OutboxEvent] = (),
        parked: Sequence[OutboxEvent] = (),
    ) -> None:
        for kind in MessageType:
            counts = [sum(1 for e in group if e.priority == kind.priority)
                      for group in (published, failed, parked)]
            if any(counts):
                self.telemetry.relayed(kind, *counts)

    async def _park(self, poison: list[tuple[OutboxEvent, str]]) -> int:
        """An event whose payload is not a delivery can never be published: park it now."""
        now = self.clock.now()

        async def park(uow: UnitOfWork) -> None:
            for event, reason in poison:
                await uow.outbox.park(event.id, reason[:2000], now)

        await self._commit(park)
        return len(poison)

    async def _failed(self, events: list[OutboxEvent], error: str) -> None:
        """Schedule another try of each event, later the more it failed in a row."""
        now = self.clock.now()

        async def retry(uow: UnitOfWork) -> None:
            for event in events:
                run_at = now + self.policy.delay(event.attempts)
                await uow.outbox.retry_later(event.id, error[:2000], run_at)

        await self._commit(retry)

    async def _expire(self, expired: list[tuple[OutboxEvent, DeliveryJob]]) -> None:
        """Fail and refund, as expired, what these SMS still have unfinished.

        Recipients SENDING within their lease are left to the delivery that holds
        them (it settles them as expired itself); the events count as published,
        so a lost delivery among them is redriven, and expires, later.
        """
        now = self.clock.now()

        async def expire(uow: UnitOfWork) -> list[list[Verdict]]:
            claimed = await uow.messages.claim_many(
                [d.sms_identifier for _, d in expired], now, self.validity.stale_before(now)
            )
            settled = await settle(uow, [
                Settlement(d, [Verdict(r, SmsStatus.FAILED, reason=FailureReason.EXPIRED)
                               for r in claimed.get(d.sms_identifier, [])])
                for _, d in expired
            ], now)
            await uow.outbox.mark_published([e.id for e, _ in expired], now)
            return settled.verdicts

        applied = await self._commit(expire)
        for (event, delivery), verdicts in zip(expired, applied, strict=True):
            seconds = (now - event.created_at).total_seconds()
            for _ in verdicts:
                self.telemetry.finished(delivery.type, SmsStatus.FAILED, seconds)
            if verdicts and delivery.unit_share:
                self.telemetry.ledger(TransactionType.REFUND,
                                      len(verdicts) * delivery.unit_share, len(verdicts))

    async def purge(self, retention: timedelta, batch: int = 1000) -> int:
        """Delete events published over `retention` ago whose SMS has finished."""
        before = self.clock.now() - retention
        return await self._commit(lambda uow: uow.outbox.purge(before, batch))

    async def redrive(
        self, stalled_for: timedelta, quiet: Collection[MessageType] = (), limit: int = 1000
    ) -> int:
        """Requeue published SMS whose delivery was lost: a recipient SENDING past its
        lease, or, in a lane whose queue is `quiet` (nothing waiting), a recipient
        still PENDING `stalled_for` after publishing."""
        now = self.clock.now()
        return await self._commit(lambda uow: uow.outbox.redrive(
            now - stalled_for, self.validity.stale_before(now), now,
            [kind.priority for kind in quiet], limit,
        ))

    async def _commit(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """`work` in a transaction of its own, committed; re-run whole on a deadlock."""
        async def body(uow: UnitOfWork) -> T:
            result = await work(uow)
            await uow.commit()
            return result

        return await in_transaction(self.uow, body)


def _decode(
    events: list[OutboxEvent],
) -> tuple[list[tuple[OutboxEvent, DeliveryJob]], list[tuple[OutboxEvent, str]]]:
    good: list[tuple[OutboxEvent, DeliveryJob]] = []
    poison: list[tuple[OutboxEvent, str]] = []
    for event in events:
        try:
            good.append((event, event.delivery()))
        except UndecodablePayload as exc:
            poison.append((event, f"undecodable payload: {exc}"))
    return good, poison
