"""The transactional outbox: claim with a lease, publish, retry, defer, park, redrive."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from smsgw_adapters import codec
from smsgw_adapters.sql.messages import UNFINISHED
from smsgw_adapters.sql.repository import SqlRepository
from smsgw_adapters.sql.schema import outbox_events, sms_status
from smsgw_core.fairness import Waiting
from smsgw_core.messages import SmsStatus
from smsgw_core.outbox import SMS_SEND, DeliveryJob, OutboxEvent, UndecodablePayload
from smsgw_core.ports import Backlog, ParkedEvent

_out = outbox_events.c
PENDING, PUBLISHED, PARKED = "pending", "published", "parked"
AGGREGATE_TYPE = "sms"
# Built once: the accept path runs it for every request, and building a
# statement costs more than executing a cached one.
_INSERT = outbox_events.insert()


class SqlOutbox(SqlRepository):
    async def add(self, deliveries: Sequence[DeliveryJob], at: datetime) -> None:
        if not deliveries:
            return
        await self._conn.execute(_INSERT, [
            {
                "aggregate_type": AGGREGATE_TYPE, "aggregate_id": d.sms_identifier,
                "event_type": SMS_SEND, "payload": codec.to_document(d), "priority": d.priority,
                "status": PENDING, "attempts": 0, "next_run_at": at, "created_at": at,
                "updated_at": at, "user_id": d.customer_id, "recipients": len(d.recipients),
            }
            for d in deliveries
        ])

    async def claim_due(
        self, now: datetime, limit: int, lease_until: datetime, priority: int | None = None
    ) -> list[OutboxEvent]:
        conditions = [
            _out.status == PENDING,
            sa.or_(_out.next_run_at.is_(None), _out.next_run_at <= now),
        ]
        if priority is not None:
            conditions.append(_out.priority == priority)
        due = (
            sa.select(
                _out.id, _out.aggregate_id, _out.event_type, _out.payload,
                _out.priority, _out.attempts, _out.created_at,
            )
            .where(*conditions)
            .order_by(_out.priority.desc(), _out.id)
            .limit(limit)
            # Concurrent relays on MySQL take disjoint batches; SQLite serializes them.
            .with_for_update(skip_locked=True)
        )
        rows: list[sa.Row[Any]] = list(await self._conn.execute(due))
        if not rows:
            return []
        # The lease: pushing next_run_at past now hides the events from other
        # relays until it lapses, without holding a row lock while publishing.
        await self._conn.execute(
            outbox_events.update()
            .where(_out.id.in_([row.id for row in rows]))
            .values(attempts=_out.attempts + 1, next_run_at=lease_until, updated_at=now)
        )
        return [_event(row) for row in rows]

    async def waiting(
        self, now: datetime, priority: int, per_customer: int, customers: int,
        after_customer: int = -1,
    ) -> list[Waiting]:
        # The customers with pending events of the lane, from after_customer on
        # and around: an index read per customer (idx_outbox_fair's prefix).
        of_priority = {"priority": priority}
        found = list(await self._conn.scalars(
            _CUSTOMERS_AFTER, {**of_priority, "after": after_customer, "limit": customers}))
        if len(found) < customers:
            found += await self._conn.scalars(
                _CUSTOMERS_FROM_START,
                {**of_priority, "after": after_customer, "limit": customers - len(found)})
        if not found:
            return []
        # Each customer's oldest due events: one index range each, in one statement
        # built once per size (a statement built per claim cost the relay a fifth of
        # its CPU); the unused places name no customer.
        heads, size = _heads(len(found))
        values: dict[str, Any] = {**of_priority, "now": now, "per": per_customer}
        values.update((f"c{i}", found[i] if i < len(found) else _NO_CUSTOMER)
                      for i in range(size))
        return [Waiting(row.id, row.user_id, row.recipients)
                for row in await self._conn.execute(heads, values)]

    async def claim(
        self, event_ids: Sequence[int], now: datetime, lease_until: datetime
    ) -> list[OutboxEvent]:
        if not event_ids:
            return []
        rows: dict[int, Any] = {row.id: row for row in await self._conn.execute(
            sa.select(
                _out.id, _out.aggregate_id, _out.event_type, _out.payload,
                _out.priority, _out.attempts, _out.created_at,
            )
            .where(_out.id.in_(list(event_ids)), _out.status == PENDING,
                   sa.or_(_out.next_run_at.is_(None), _out.next_run_at <= now))
            # Another relay's claim of some of them: skipped, not waited for.
            .with_for_update(skip_locked=True)
        )}
        if not rows:
            return []
        await self._conn.execute(
            outbox_events.update()
            .where(_out.id.in_(list(rows)))
            .values(attempts=_out.attempts + 1, next_run_at=lease_until, updated_at=now)
        )
        return [_event(rows[i]) for i in event_ids if i in rows]

    async def mark_published(
        self, event_ids: Sequence[int], at: datetime, leased_until: datetime | None = None
    ) -> None:
        if not event_ids:
            return
        where: sa.ColumnElement[bool] = _out.id.in_(list(event_ids))
        if leased_until is not None:
            where = sa.and_(where, _out.status == PENDING, _out.next_run_at == leased_until)
        await self._set(where, status=PUBLISHED, attempts=0, updated_at=at)

    async def retry_later(self, event_id: int, error: str, run_at: datetime) -> None:
        await self._set(_out.id == event_id, next_run_at=run_at, last_error=error)

    async def park(self, event_id: int, error: str, at: datetime) -> None:
        await self._set(_out.id == event_id, status=PARKED, last_error=error, updated_at=at)

    async def defer(self, run_at: Mapping[str, datetime], at: datetime) -> None:
        # One UPDATE per distinct time (a group's SMS mostly share one), each by the
        # unique (aggregate_id, event_type) key.
        by_time: dict[datetime, list[str]] = {}
        for sms, when in sorted(run_at.items()):
            by_time.setdefault(when, []).append(sms)
        for when, sms_identifiers in by_time.items():
            await self._set(
                sa.and_(_out.aggregate_id.in_(sms_identifiers), _out.event_type == SMS_SEND,
                        _out.status != PARKED),
                status=PENDING, attempts=0, next_run_at=when, updated_at=at,
            )

    async def redrive(
        self,
        published_before: datetime,
        sending_before: datetime,
        now: datetime,
        quiet: Collection[int] = (),
        limit: int = 1000,
    ) -> int:
        # Find first, with a plain read, then update by primary key: an UPDATE whose
        # WHERE reads sms_status would lock the rows it scans in both tables, in
        # the opposite order from a delivery settling its recipients.
        lost = sa.or_(
            _has_recipients(_sms.status == SmsStatus.SENDING.value,
                            _sms.updated_at < sending_before),
            sa.and_(
                _out.priority.in_(list(quiet)) if quiet else sa.false(),
                _out.updated_at <= published_before,
                _has_recipients(_sms.status == SmsStatus.PENDING.value),
            ),
        )
        ids = list(await self._conn.scalars(
            sa.select(_out.id).where(_out.status == PUBLISHED, lost).order_by(_out.id)
            .limit(limit)
        ))
        if not ids:
            return 0
        requeued = await self._conn.execute(
            outbox_events.update()
            .where(_out.id.in_(ids), _out.status == PUBLISHED)
            .values(status=PENDING, attempts=0, next_run_at=now, updated_at=now)
        )
        return requeued.rowcount

    async def parked(self, limit: int) -> list[ParkedEvent]:
        rows = await self._conn.execute(
            sa.select(_out.id, _out.aggregate_id, _out.priority, _out.attempts,
                      _out.created_at, _out.last_error)
            .where(_out.status == PARKED).order_by(_out.id).limit(limit)
        )
        return [ParkedEvent(r.id, r.aggregate_id, r.priority, r.attempts, r.created_at,
                            r.last_error or "") for r in rows]

    async def requeue(self, event_ids: Sequence[int] | None, now: datetime) -> int:
        where = _out.status == PARKED
        if event_ids is not None:
            if not event_ids:
                return 0
            where = sa.and_(where, _out.id.in_(list(event_ids)))
        requeued = await self._conn.execute(
            outbox_events.update().where(where)
            .values(status=PENDING, attempts=0, next_run_at=now, updated_at=now)
        )
        return requeued.rowcount

    async def backlog(self, now: datetime) -> list[Backlog]:
        due = sa.or_(_out.next_run_at.is_(None), _out.next_run_at <= now)
        events = sa.func.sum(sa.case((due, 1), else_=0))
        failing = sa.func.sum(sa.case((_out.attempts >= 2, 1), else_=0))
        rows = await self._conn.execute(
            sa.select(
                _out.priority,
                events,
                # min() takes its argument's type, so the zone comes back as for the column
                sa.func.min(sa.type_coerce(sa.case((due, _out.created_at), else_=sa.null()),
                                           _out.created_at.type)),
                failing,
            )
            .where(_out.status == PENDING)
            .group_by(_out.priority)
            .having(sa.or_(events > 0, failing > 0))
            .order_by(_out.priority.desc())
        )
        return [Backlog(int(p), int(n or 0), oldest, int(failing or 0))
                for p, n, oldest, failing in rows]

    async def purge(self, published_before: datetime, limit: int) -> int:
        # Pick the ids first: MySQL refuses a LIMIT in a subquery of the DELETE's
        # own table, and a bounded batch keeps the delete's locks short.
        ids = list(await self._conn.scalars(
            sa.select(_out.id)
            .where(_out.status == PUBLISHED, _out.updated_at <= published_before,
                   sa.not_(_unfinished()))
            .order_by(_out.id)
            .limit(limit)
        ))
        if not ids:
            return 0
        await self._conn.execute(outbox_events.delete().where(_out.id.in_(ids)))
        return len(ids)

    async def _set(self, where: sa.ColumnElement[bool], **values: Any) -> None:
        await self._conn.execute(outbox_events.update().where(where).values(**values))


_sms = sms_status.c

_NO_CUSTOMER = -1  # customer ids are positive
_WAITING_CUSTOMERS = sa.select(_out.user_id).distinct().where(
    _out.status == PENDING, _out.priority == sa.bindparam("priority"))
_CUSTOMERS_AFTER = (
    _WAITING_CUSTOMERS.where(_out.user_id > sa.bindparam("after"))
    .order_by(_out.user_id).limit(sa.bindparam("limit", type_=sa.Integer)))
_CUSTOMERS_FROM_START = (
    _WAITING_CUSTOMERS.where(_out.user_id <= sa.bindparam("after"))
    .order_by(_out.user_id).limit(sa.bindparam("limit", type_=sa.Integer)))


@functools.cache
def _heads_of(size: int) -> sa.CompoundSelect[Any]:
    due = sa.or_(_out.next_run_at.is_(None),
                 _out.next_run_at <= sa.bindparam("now", type_=_out.next_run_at.type))
    return sa.union_all(*(
        sa.select(_out.id, _out.user_id, _out.recipients)
        .where(_out.status == PENDING, _out.priority == sa.bindparam("priority"),
               _out.user_id == sa.bindparam(f"c{i}"), due)
        .order_by(_out.id).limit(sa.bindparam("per", type_=sa.Integer)).subquery().select()
        for i in range(size)
    ))


def _heads(customers: int) -> tuple[sa.CompoundSelect[Any], int]:
    """The statement reading the heads of `customers` customers' queues, and its
    places: a power of two, so a handful of statements serve every claim."""
    size = 1 << max(0, customers - 1).bit_length()
    return _heads_of(size), size


def _has_recipients(*conditions: sa.ColumnElement[bool]) -> sa.Exists:
    """The event's SMS has a recipient meeting `conditions`."""
    return sa.select(_sms.id).where(_sms.sms_identifier == _out.aggregate_id, *conditions).exists()


def _unfinished() -> sa.Exists:
    """The event's SMS still has a recipient that is not DONE or FAILED."""
    return _has_recipients(_sms.status.in_(UNFINISHED))


def _content(payload: Any) -> DeliveryJob | UndecodablePayload:
    try:
        return codec.from_document(payload)
    except UndecodablePayload as exc:
        return exc  # the relay parks it, with this reason


def _event(row: sa.Row[Any]) -> OutboxEvent:
    return OutboxEvent(
        id=row.id,
        aggregate_id=row.aggregate_id,
        event_type=row.event_type,
        content=_content(row.payload),
        priority=row.priority,
        attempts=row.attempts + 1,
        created_at=row.created_at,
    )
