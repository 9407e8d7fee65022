"""Move committed outbox events onto the bus, express first, retrying with backoff.

Claiming is a short transaction that leases the events; publishing happens
outside any transaction; marking them published is another. A crash in between
lets the lease lapse and the events are published again: consumers are
idempotent, so at-least-once publishing is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from smsgw_core.messages import MessageType
from smsgw_core.outbox import Delivery, OutboxEvent, RetryPolicy
from smsgw_core.ports import Clock, MessageBus, UnitOfWorkFactory
from smsgw_core.telemetry import NoTelemetry, Telemetry


@dataclass(frozen=True, slots=True)
class RelayReport:
    published: int
    retried: int
    parked: int


@dataclass
class OutboxRelay:
    uow: UnitOfWorkFactory
    bus: MessageBus
    clock: Clock
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    batch_size: int = 100
    lane: MessageType | None = None  # None: every priority, express first
    telemetry: Telemetry = field(default_factory=NoTelemetry)

    async def relay_once(self) -> RelayReport:
        now = self.clock.now()
        priority = None if self.lane is None else self.lane.priority
        async with self.uow() as uow:
            events = await uow.outbox.claim_due(
                now, self.batch_size, now + self.policy.lease, priority
            )
            await uow.commit()
        if not events:
            return RelayReport(0, 0, 0)
        deliveries, poison = _decode(events)
        if poison:
            await self._park(poison)
            self._report(parked=[e for e, _ in poison])
        if not deliveries:
            return RelayReport(0, 0, len(poison))
        good = [event for event, _ in deliveries]
        try:
            await self.bus.publish([delivery for _, delivery in deliveries])
        except Exception as exc:  # any bus failure: the events wait and try again
            retried, parked = await self._failed(good, repr(exc))
            self._report(failed=retried + parked, parked=parked)
            return RelayReport(0, len(retried), len(parked) + len(poison))
        async with self.uow() as uow:
            await uow.outbox.mark_published([e.id for e in good], self.clock.now())
            await uow.commit()
        self._report(published=good)
        return RelayReport(len(good), 0, len(poison))

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
        async with self.uow() as uow:
            for event, reason in poison:
                await uow.outbox.park(event.id, reason[:2000], now)
            await uow.commit()
        return len(poison)

    async def _failed(
        self, events: list[OutboxEvent], error: str
    ) -> tuple[list[OutboxEvent], list[OutboxEvent]]:
        """Schedule a retry of each event, or park those out of attempts."""
        retried: list[OutboxEvent] = []
        parked: list[OutboxEvent] = []
        now = self.clock.now()
        async with self.uow() as uow:
            for event in events:
                if self.policy.gives_up(event.attempts):
                    await uow.outbox.park(event.id, error[:2000], now)
                    parked.append(event)
                else:
                    run_at = now + self.policy.delay(event.attempts)
                    await uow.outbox.retry_later(event.id, error[:2000], run_at)
                    retried.append(event)
            await uow.commit()
        return retried, parked

    async def purge(self, retention: timedelta, batch: int = 1000) -> int:
        """Delete events published over `retention` ago whose SMS has finished."""
        async with self.uow() as uow:
            count = await uow.outbox.purge(self.clock.now() - retention, batch)
            await uow.commit()
        return count

    async def redrive(self, stalled_for: timedelta) -> int:
        """Requeue published SMS with unfinished recipients older than `stalled_for`."""
        now = self.clock.now()
        async with self.uow() as uow:
            count = await uow.outbox.redrive(now - stalled_for, now)
            await uow.commit()
        return count


def _decode(
    events: list[OutboxEvent],
) -> tuple[list[tuple[OutboxEvent, Delivery]], list[tuple[OutboxEvent, str]]]:
    good: list[tuple[OutboxEvent, Delivery]] = []
    poison: list[tuple[OutboxEvent, str]] = []
    for event in events:
        try:
            good.append((event, event.delivery()))
        except (KeyError, TypeError, ValueError) as exc:
            poison.append((event, f"undecodable payload: {type(exc).__name__}: {exc}"))
    return good, poison
