"""Webhook endpoints, the events owed to them, and each attempt (see core webhooks.py).

A claim leases events with a token of its own (`claimed_by`) by a conditional
UPDATE of pending, due rows, then reads back what carries its token: of two
processes claiming at once each gets only the rows its UPDATE moved, without
a locking read. The lease is `next_at` itself: a process that dies with
events leased leaves them due again when the lease ends.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from smsgw_adapters.sql.repository import SqlRepository
from smsgw_adapters.sql.schema import webhook_attempts, webhook_endpoints, webhook_events
from smsgw_core.webhooks import (
    Attempt,
    Endpoint,
    EventOutcome,
    EventState,
    EventType,
    WebhookEvent,
)

_e = webhook_events.c
_p = webhook_endpoints.c
_a = webhook_attempts.c
_PENDING = EventState.PENDING.value
_SUBSCRIPTIONS = (
    sa.select(_p.user_id, _p.events)
    .where(_p.user_id.in_(sa.bindparam("customers", expanding=True)), _p.disabled_at.is_(None))
)
_DUE = (
    sa.select(_e.user_id, sa.func.min(_e.next_at).label("due"))
    .where(_e.state == _PENDING)
    .group_by(_e.user_id)
    .having(sa.func.min(_e.next_at) <= sa.bindparam("now", type_=_e.next_at.type))
    .order_by(sa.text("due"))
    .limit(sa.bindparam("customers"))
)
_AT = _e.next_at.type


@functools.lru_cache(maxsize=256)
def _to_claim(customers: int) -> sa.Executable:
    """The due events of `customers` customers, each its own short index range and
    limit, in one statement (a round trip per customer was most of this process's
    SQL): a UNION ALL of per-customer selects, each a derived table since SQLite
    takes no LIMIT on a part of a compound. Built once per count."""
    now = sa.bindparam("now", type_=_AT)
    parts = [
        sa.select(_e.id)  # ids alone: MariaDB's derived tables of a TEXT go to disk
        .where(_e.state == _PENDING, _e.user_id == sa.bindparam(f"c{i}"), _e.next_at <= now)
        .order_by(_e.next_at, _e.id)
        .limit(sa.bindparam(f"l{i}"))
        .subquery(f"c{i}").select()
        for i in range(customers)
    ]
    return sa.union_all(*parts)


# The statements of every pass, built once (building them each time, with their
# IN lists, was a tenth of this process's CPU): an expanding IN takes any count.
_IDS: sa.BindParameter[list[int]] = sa.bindparam("ids", expanding=True)
_LEASE = (
    webhook_events.update()
    .where(_e.id.in_(_IDS), _e.state == _PENDING, _e.next_at <= sa.bindparam("now", type_=_AT))
    .values(next_at=sa.bindparam("lease_until", type_=_AT), claimed_by=sa.bindparam("token"),
            attempts=_e.attempts + 1)
)
_LEASED = (
    sa.select(webhook_events).where(_e.id.in_(_IDS), _e.claimed_by == sa.bindparam("token"))
    .order_by(_e.id)
)
_RETRY = (
    webhook_events.update()
    .where(_e.id == sa.bindparam("position"), _e.state == _PENDING)
    .values(next_at=sa.bindparam("retry_at", type_=_AT), claimed_by=None)
)
_END = (
    webhook_events.update()
    .where(_e.id.in_(_IDS), _e.state == _PENDING)
    .values(state=sa.bindparam("to_state"), finished_at=sa.bindparam("at", type_=_AT),
            claimed_by=None)
)
_ENDPOINTS = sa.select(webhook_endpoints).where(
    _p.user_id.in_(sa.bindparam("customers", expanding=True)))

class SqlWebhooks(SqlRepository):
    async def subscriptions(self, customer_ids: Collection[int]) -> dict[int, frozenset[EventType]]:
        if not customer_ids:
            return {}
        rows = await self._conn.execute(_SUBSCRIPTIONS, {"customers": sorted(set(customer_ids))})
        return {row.user_id: _types(row.events) for row in rows}

    async def add_events(self, events: Sequence[WebhookEvent]) -> None:
        if events:
            await self._conn.execute(webhook_events.insert(), [_event_row(e) for e in events])

    async def endpoint(self, customer_id: int) -> Endpoint | None:
        row = (await self._conn.execute(
            sa.select(webhook_endpoints).where(_p.user_id == customer_id))).first()
        return None if row is None else _endpoint(row)

    async def endpoints(self, customer_ids: Collection[int]) -> dict[int, Endpoint]:
        if not customer_ids:
            return {}
        rows = await self._conn.execute(_ENDPOINTS, {"customers": sorted(set(customer_ids))})
        return {row.user_id: _endpoint(row) for row in rows}

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        values = {
            "url": endpoint.url, "events": ",".join(sorted(t.value for t in endpoint.events)),
            "secret": endpoint.secret, "previous_secret": endpoint.previous_secret,
            "previous_until": endpoint.previous_until, "disabled_at": endpoint.disabled_at,
            "disabled_reason": endpoint.disabled_reason, "created_at": endpoint.created_at,
        }
        moved = await self._conn.execute(
            webhook_endpoints.update().where(_p.user_id == endpoint.customer_id).values(values))
        if moved.rowcount == 0:
            await self._conn.execute(
                webhook_endpoints.insert().values(user_id=endpoint.customer_id, **values))

    async def delete_endpoint(self, customer_id: int, at: datetime) -> bool:
        gone = await self._conn.execute(
            webhook_endpoints.delete().where(_p.user_id == customer_id))
        await self._bury(customer_id, at)
        return bool(gone.rowcount)

    async def disable(self, customer_id: int, at: datetime, reason: str) -> None:
        await self._conn.execute(
            webhook_endpoints.update()
            .where(_p.user_id == customer_id, _p.disabled_at.is_(None))
            .values(disabled_at=at, disabled_reason=reason[:255]))
        await self._bury(customer_id, at)

    async def _bury(self, customer_id: int, at: datetime) -> None:
        await self._conn.execute(
            webhook_events.update()
            .where(_e.user_id == customer_id, _e.state == _PENDING)
            .values(state=EventState.DEAD.value, finished_at=at, claimed_by=None))

    async def due(self, now: datetime, customers: int) -> list[int]:
        rows = await self._conn.execute(_DUE, {"now": now, "customers": customers})
        return [row.user_id for row in rows]

    async def claim(
        self, customer_id: int, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookEvent]:
        return await self.claim_many({customer_id: limit}, now, lease_until)

    async def claim_many(
        self, rooms: Mapping[int, int], now: datetime, lease_until: datetime
    ) -> list[WebhookEvent]:
        if not rooms:
            return []
        params: dict[str, Any] = {"now": now}
        for i, (customer, limit) in enumerate(rooms.items()):
            params[f"c{i}"], params[f"l{i}"] = customer, limit
        ids = list((await self._conn.execute(_to_claim(len(rooms)), params)).scalars())
        if not ids:
            return []
        token = secrets.token_hex(16)
        await self._conn.execute(
            _LEASE, {"ids": ids, "now": now, "lease_until": lease_until, "token": token})
        rows = await self._conn.execute(_LEASED, {"ids": ids, "token": token})
        return [_event(row) for row in rows]

    async def finish(self, outcomes: Sequence[EventOutcome]) -> None:
        if not outcomes:
            return
        positions = {o.event_id: o.position for o in outcomes if o.position is not None}
        unknown = [o.event_id for o in outcomes if o.position is None]
        if unknown:
            positions.update({row.event_id: row.id for row in await self._conn.execute(
                sa.select(_e.id, _e.event_id).where(_e.event_id.in_(unknown)))})
        attempts = [_attempt_row(positions[o.event_id], o.attempt) for o in outcomes
                    if o.event_id in positions]
        if attempts:
            await self._conn.execute(webhook_attempts.insert(), attempts)
        # Delivered and dead events in one statement each; retries in one executemany.
        ended: dict[EventState, list[int]] = {}
        retries: list[dict[str, Any]] = []
        for o in outcomes:
            if o.event_id not in positions:
                continue
            if o.state is EventState.PENDING:
                retries.append({"position": positions[o.event_id], "retry_at": o.next_at})
            else:
                ended.setdefault(o.state, []).append(positions[o.event_id])
        if retries:
            await self._conn.execute(_RETRY, retries)
        at = max(o.attempt.at for o in outcomes)
        for state, ids in ended.items():
            await self._conn.execute(_END, {"ids": ids, "to_state": state.value, "at": at})

    async def listed(
        self, customer_id: int, state: EventState | None, limit: int, before: int | None
    ) -> list[WebhookEvent]:
        select = (sa.select(webhook_events).where(_e.user_id == customer_id)
                  .order_by(_e.id.desc()).limit(limit))
        if state is not None:
            select = select.where(_e.state == state.value)
        if before is not None:
            select = select.where(_e.id < before)
        events = [_event(row) for row in await self._conn.execute(select)]
        if not events:
            return []
        tried: dict[int, list[Attempt]] = {}
        for row in await self._conn.execute(
                sa.select(webhook_attempts)
                .where(_a.event.in_([e.position for e in events])).order_by(_a.id)):
            tried.setdefault(row.event, []).append(_attempt(row))
        return [_with_history(e, tried.get(e.position, [])) for e in events]

    async def replay(self, customer_id: int, event_id: str, now: datetime) -> EventState | None:
        row = (await self._conn.execute(
            sa.select(_e.id, _e.state)
            .where(_e.user_id == customer_id, _e.event_id == event_id)
            .with_for_update())).first()
        if row is None:
            return None
        before = EventState(row.state)
        if before is not EventState.PENDING:
            await self._conn.execute(
                webhook_events.update().where(_e.id == row.id)
                .values(state=_PENDING, attempts=0, next_at=now, finished_at=None,
                        claimed_by=None))
        return before

    async def oldest_pending(self) -> datetime | None:
        oldest: datetime | None = (await self._conn.execute(
            sa.select(sa.func.min(_e.created_at)).where(_e.state == _PENDING))).scalar()
        return oldest


def _types(text: str) -> frozenset[EventType]:
    return frozenset(EventType(t) for t in text.split(",") if t)


def _endpoint(row: sa.Row[Any]) -> Endpoint:
    return Endpoint(row.user_id, row.url, _types(row.events), row.secret, row.created_at,
                    row.previous_secret, row.previous_until, row.disabled_at,
                    row.disabled_reason)


def _event_row(e: WebhookEvent) -> dict[str, Any]:
    return {"event_id": e.id, "user_id": e.customer_id, "type": e.type.value,
            "body": e.body.decode(), "state": e.state.value, "attempts": e.attempts,
            "next_at": e.next_at or e.created_at, "created_at": e.created_at}


def _event(row: sa.Row[Any]) -> WebhookEvent:
    return WebhookEvent(row.event_id, row.user_id, EventType(row.type), row.body.encode(),
                        row.created_at, EventState(row.state), row.attempts, row.next_at,
                        row.id)


def _with_history(event: WebhookEvent, attempts: list[Attempt]) -> WebhookEvent:
    return WebhookEvent(event.id, event.customer_id, event.type, event.body, event.created_at,
                        event.state, event.attempts, event.next_at, event.position,
                        tuple(attempts))


def _attempt_row(position: int, a: Attempt) -> dict[str, Any]:
    return {"event": position, "at": a.at, "status_code": a.status_code,
            "error": a.error[:255], "answer": a.answer[:255], "seconds": a.seconds}


def _attempt(row: sa.Row[Any]) -> Attempt:
    return Attempt(row.at, row.status_code, row.error, row.answer, row.seconds)
