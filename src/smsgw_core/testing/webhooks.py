"""The in-memory webhook endpoints and events: the reference the SQL store is held to."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from smsgw_core.testing.repositories import _Repo
from smsgw_core.webhooks import Endpoint, EventOutcome, EventState, EventType, WebhookEvent

_PENDING = EventState.PENDING


class InMemoryWebhooks(_Repo):
    async def subscriptions(self, customer_ids: Collection[int]) -> dict[int, frozenset[EventType]]:
        return {c: e.events for c in customer_ids
                if (e := self.s.endpoints.get(c)) is not None and e.disabled_at is None}

    async def add_events(self, events: Sequence[WebhookEvent]) -> None:
        known = {e.id for e in self.s.webhook_events.values()}
        for event in events:
            if event.id in known:
                raise ValueError(f"duplicate webhook event {event.id}")
            known.add(event.id)
            position = self.s.take_id()
            self.s.webhook_events[position] = replace(
                event, position=position, next_at=event.next_at or event.created_at)

    async def endpoint(self, customer_id: int) -> Endpoint | None:
        return self.s.endpoints.get(customer_id)

    async def endpoints(self, customer_ids: Collection[int]) -> dict[int, Endpoint]:
        return {c: e for c in customer_ids if (e := self.s.endpoints.get(c)) is not None}

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        self.s.endpoints[endpoint.customer_id] = endpoint

    async def delete_endpoint(self, customer_id: int, at: datetime) -> bool:
        gone = self.s.endpoints.pop(customer_id, None) is not None
        self._bury(customer_id)
        return gone

    async def disable(self, customer_id: int, at: datetime, reason: str) -> None:
        endpoint = self.s.endpoints.get(customer_id)
        if endpoint is not None and endpoint.disabled_at is None:
            self.s.endpoints[customer_id] = replace(endpoint, disabled_at=at,
                                                    disabled_reason=reason[:255])
        self._bury(customer_id)

    def _bury(self, customer_id: int) -> None:
        for position, e in self.s.webhook_events.items():
            if e.customer_id == customer_id and e.state is _PENDING:
                self.s.webhook_events[position] = replace(e, state=EventState.DEAD)

    def _due(self, now: datetime) -> list[WebhookEvent]:
        return sorted((e for e in self.s.webhook_events.values()
                       if e.state is _PENDING and e.next_at is not None and e.next_at <= now),
                      key=lambda e: (e.next_at, e.position))

    async def due(self, now: datetime, customers: int) -> list[int]:
        return list(dict.fromkeys(e.customer_id for e in self._due(now)))[:customers]

    async def claim(
        self, customer_id: int, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookEvent]:
        taken = [e for e in self._due(now) if e.customer_id == customer_id][:limit]
        claimed = []
        for e in sorted(taken, key=lambda e: e.position):
            leased = replace(e, attempts=e.attempts + 1, next_at=lease_until)
            self.s.webhook_events[e.position] = leased
            claimed.append(leased)
        return claimed

    async def claim_many(
        self, rooms: Mapping[int, int], now: datetime, lease_until: datetime
    ) -> list[WebhookEvent]:
        claimed = []
        for customer, limit in rooms.items():
            claimed += await self.claim(customer, now, limit, lease_until)
        return sorted(claimed, key=lambda e: e.position)

    async def finish(self, outcomes: Sequence[EventOutcome]) -> None:
        positions = {e.id: p for p, e in self.s.webhook_events.items()}
        for o in outcomes:
            position = o.position if o.position is not None else positions.get(o.event_id)
            if position is None or position not in self.s.webhook_events:
                continue
            self.s.webhook_attempts.setdefault(position, []).append(replace(
                o.attempt, error=o.attempt.error[:255], answer=o.attempt.answer[:255]))
            e = self.s.webhook_events[position]
            if e.state is _PENDING:
                self.s.webhook_events[position] = replace(
                    e, state=o.state, next_at=o.next_at if o.state is _PENDING else e.next_at)

    async def listed(
        self, customer_id: int, state: EventState | None, limit: int, before: int | None
    ) -> list[WebhookEvent]:
        found = [e for p, e in sorted(self.s.webhook_events.items(), reverse=True)
                 if e.customer_id == customer_id and (state is None or e.state is state)
                 and (before is None or p < before)][:limit]
        return [replace(e, history=tuple(self.s.webhook_attempts.get(e.position, [])))
                for e in found]

    async def replay(self, customer_id: int, event_id: str, now: datetime) -> EventState | None:
        for position, e in self.s.webhook_events.items():
            if e.customer_id == customer_id and e.id == event_id:
                if e.state is not _PENDING:
                    self.s.webhook_events[position] = replace(
                        e, state=_PENDING, attempts=0, next_at=now)
                return e.state
        return None

    async def oldest_pending(self) -> datetime | None:
        return min((e.created_at for e in self.s.webhook_events.values()
                    if e.state is _PENDING), default=None)
