"""Per-recipient message rows and their state machine, enforced by conditional updates."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from smsgw_adapters.sql.repository import SqlRepository, force_index
from smsgw_adapters.sql.schema import operator_receipts, sms_status, user_transactions
from smsgw_core.errors import InvalidTransition
from smsgw_core.ledger import charge_id
from smsgw_core.messages import MessageType, RecipientMessage, SmsStatus
from smsgw_core.ports import HistoryFilter, Reached, RecipientFinish
from smsgw_core.receipts import OperatorMessage

_sms = sms_status.c
UNFINISHED = (SmsStatus.PENDING.value, SmsStatus.SENDING.value)
_BY_SMS = _sms.sms_identifier.in_(sa.bindparam("sms", expanding=True))
# Each locking read goes along the (sms_identifier, recipient) key: concurrent
# claims and outcomes then lock their rows in that one order, and only theirs.
_KEY = "uq_sms_status_identifier_recipient"
_UNFINISHED_ROWS = force_index(_KEY, sms_status, (
    sa.select(_sms.id, _sms.sms_identifier, _sms.recipient)
    .where(_BY_SMS, _sms.status.in_(UNFINISHED))
    .order_by(_sms.id)
    .with_for_update()
))
# PENDING, or SENDING past its lease: a row a delivery in progress holds is not
# even locked, so that delivery's outcome never waits for this claim.
_CLAIMABLE_ROWS = force_index(_KEY, sms_status, (
    sa.select(_sms.id, _sms.sms_identifier, _sms.recipient)
    .where(_BY_SMS, sa.or_(
        _sms.status == SmsStatus.PENDING.value,
        sa.and_(_sms.status == SmsStatus.SENDING.value,
                _sms.updated_at < sa.bindparam("stale_before", type_=_sms.updated_at.type)),
    ))
    .order_by(_sms.id)
    .with_for_update()
))
_SENDING_ROWS = force_index(_KEY, sms_status, (
    sa.select(_sms.id, _sms.sms_identifier, _sms.recipient)
    .where(_BY_SMS, _sms.status == SmsStatus.SENDING.value)
    .order_by(_sms.id)
    .with_for_update()
))
_MOVE_ROWS = sms_status.update().where(_sms.id.in_(sa.bindparam("ids", expanding=True)))
# The recipients an operator's message ids name, locked along (provider, message_id):
# a receipt and the outcome recording that id wait for each other here (see
# services/receipts.py), and an id being written by an outcome not yet committed is
# waited for, not missed.
_NAMED_ROWS = force_index("idx_sms_status_provider_message", sms_status, (
    sa.select(_sms.id, _sms.sms_identifier, _sms.recipient, _sms.user_id, _sms.status,
              _sms.message_id, _sms.updated_at)
    .where(_sms.provider == sa.bindparam("operator"),
           _sms.message_id.in_(sa.bindparam("message_ids", expanding=True)))
    .order_by(_sms.id)
    .with_for_update()
))
_REPORT_ROWS = (sms_status.update()
                .where(_sms.id.in_(sa.bindparam("ids", expanding=True)),
                       _sms.status == SmsStatus.DONE.value))
_rc = operator_receipts.c
# The history with each recipient's receipt (its error code and time), where it has one.
_HISTORY = (
    sa.select(sms_status, _rc.error_code.label("receipt_error_code"),
              _rc.done_at.label("receipt_done_at"), _rc.received_at.label("receipt_received_at"))
    .select_from(sms_status.outerjoin(operator_receipts, sa.and_(
        _rc.operator == _sms.provider, _rc.message_id == _sms.message_id)))
)
_RECEIPT_STATUSES = frozenset(
    {SmsStatus.DELIVERED, SmsStatus.UNDELIVERED, SmsStatus.EXPIRED})


class SqlMessages(SqlRepository):
    async def add(self, messages: Sequence[RecipientMessage]) -> None:
        if not messages:
            return
        try:
            await self._conn.execute(sms_status.insert(), [_row(m) for m in messages])
        except IntegrityError as exc:
            # The in-memory repository raises ValueError for the same mistake.
            raise ValueError(f"duplicate recipient in {messages[0].sms_identifier}") from exc

    async def claim_many(
        self, sms_identifiers: Sequence[str], at: datetime, stale_before: datetime | None = None,
        only: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, list[str]]:
        # FOR UPDATE keeps a concurrent finish() from slipping between the read
        # and the update on MySQL; SQLite's writer lock already excludes it.
        sms = list(dict.fromkeys(sms_identifiers))
        if stale_before is None:
            rows = (await self._conn.execute(_UNFINISHED_ROWS, {"sms": sms})).all()
        else:
            rows = (await self._conn.execute(
                _CLAIMABLE_ROWS, {"sms": sms, "stale_before": stale_before}
            )).all()
        if only:
            # The other recipients' rows stay as they are (locked until the commit,
            # a moment): another part of the SMS is another delivery's.
            rows = [row for row in rows if row.sms_identifier not in only
                    or row.recipient in only[row.sms_identifier]]
        if not rows:
            return {}
        # By primary key, the rows just locked: the optimizer may take another
        # index for a second scan by identifier, whose locks two concurrent
        # claims of one SMS would take in opposite orders (a deadlock).
        await self._conn.execute(
            _MOVE_ROWS.values(status=SmsStatus.SENDING.value, updated_at=at),
            {"ids": [row.id for row in rows]},
        )
        claimed: dict[str, list[str]] = {}
        for row in rows:
            claimed.setdefault(row.sms_identifier, []).append(row.recipient)
        return claimed

    async def finish_many(self, outcomes: Sequence[RecipientFinish], at: datetime) -> list[bool]:
        for o in outcomes:
            if o.status is SmsStatus.SENDING:
                raise InvalidTransition(SmsStatus.SENDING.value, o.status.value)
        if not outcomes:
            return []
        sending = await self._conn.execute(
            _SENDING_ROWS, {"sms": list(dict.fromkeys(o.sms_identifier for o in outcomes))}
        )
        row_ids = {(row.sms_identifier, row.recipient): row.id for row in sending}
        moved: list[bool] = []
        moves: dict[tuple[SmsStatus, str], dict[int, str]] = {}
        for o in outcomes:
            row_id = row_ids.pop((o.sms_identifier, o.recipient), None)  # once, the first time
            moved.append(row_id is not None)
            if row_id is not None:
                moves.setdefault((o.status, o.provider), {})[row_id] = o.message_id
        # One UPDATE per (status, provider): DONE by A, DONE by B, FAILED, PENDING, ...
        for (status, provider), rows in moves.items():
            values: dict[str, Any] = {"status": status.value, "updated_at": at}
            if provider:  # as RecipientMessage.moved_to: an empty provider keeps the old one
                values["provider"] = provider
            named = {row_id: mid for row_id, mid in rows.items() if mid}
            if named:  # each row its own operator's id, in the same statement
                values["message_id"] = sa.case(named, value=_sms.id, else_=_sms.message_id)
            await self._conn.execute(_MOVE_ROWS.values(values), {"ids": list(rows)})
        return moved

    async def report_many(
        self, reports: Sequence[tuple[OperatorMessage, SmsStatus]], at: datetime
    ) -> list[Reached | None]:
        for _, status in reports:
            if status not in _RECEIPT_STATUSES:
                raise InvalidTransition(SmsStatus.DONE.value, status.value)
        found: dict[OperatorMessage, Any] = {}
        for operator in dict.fromkeys(about.operator for about, _ in reports):
            named = list(dict.fromkeys(a.message_id for a, _ in reports if a.operator == operator))
            for named_row in await self._conn.execute(
                    _NAMED_ROWS, {"operator": operator, "message_ids": named}):
                found.setdefault(OperatorMessage(operator, named_row.message_id), named_row)
        reached: list[Reached | None] = []
        moves: dict[SmsStatus, list[int]] = {}
        moving: set[int] = set()
        for about, status in reports:
            row = found.get(about)
            if row is None:
                reached.append(None)
                continue
            moves_now = row.status == SmsStatus.DONE.value and row.id not in moving
            if moves_now:
                moving.add(row.id)
                moves.setdefault(status, []).append(row.id)
            reached.append(Reached(row.sms_identifier, row.recipient, row.user_id, moves_now,
                                   row.updated_at))
        for status, row_ids in moves.items():
            await self._conn.execute(
                _REPORT_ROWS.values(status=status.value, updated_at=at), {"ids": row_ids})
        return reached

    async def shares(self, sms_identifiers: Collection[str]) -> dict[str, int]:
        sms = list(dict.fromkeys(sms_identifiers))
        if not sms:
            return {}
        tx = user_transactions.c
        charged = {row.transaction_id: -row.amount for row in await self._conn.execute(
            sa.select(tx.transaction_id, tx.amount)
            .where(tx.transaction_id.in_([charge_id(s) for s in sms])))}
        counts = await self._conn.execute(
            sa.select(_sms.sms_identifier, sa.func.count())
            .where(_sms.sms_identifier.in_(sms)).group_by(_sms.sms_identifier))
        return {row[0]: charged[charge_id(row[0])] // row[1] for row in counts
                if charge_id(row[0]) in charged}

    async def history(
        self, query: HistoryFilter, limit: int, before: int | None
    ) -> list[tuple[int, RecipientMessage]]:
        select = (
            _HISTORY
            .where(_sms.user_id == query.customer_id)
            .order_by(_sms.id.desc())
            .limit(limit)
        )
        if (statuses := query.statuses()) is not None:
            select = select.where(_sms.status.in_(sorted(s.value for s in statuses)))
        if query.sms_identifier is not None:
            select = select.where(_sms.sms_identifier == query.sms_identifier)
        if before is not None:
            select = select.where(_sms.id < before)
        rows = await self._conn.execute(select)
        return [(row.id, _message(row)) for row in rows]


def _row(m: RecipientMessage) -> dict[str, Any]:
    return {
        "user_id": m.customer_id,
        "status": m.status.value,
        "type": m.type.value,
        "recipient": m.recipient,
        "provider": m.provider,
        "sms_identifier": m.sms_identifier,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    }  # no message_id: a recipient is written PENDING, the operator's id comes with DONE


def _message(row: sa.Row[Any]) -> RecipientMessage:
    return RecipientMessage(
        sms_identifier=row.sms_identifier,
        customer_id=row.user_id,
        recipient=row.recipient,
        type=MessageType(row.type),
        status=SmsStatus(row.status),
        provider=row.provider,
        created_at=row.created_at,
        updated_at=row.updated_at,
        message_id=row.message_id or "",
        **_receipt(row),
    )


def _receipt(row: sa.Row[Any]) -> dict[str, Any]:
    """The error code and time of the recipient's final receipt, where it has one."""
    if row.status not in _FINAL_BY_RECEIPT or row.receipt_received_at is None:
        return {}
    return {"error_code": row.receipt_error_code,
            "delivered_at": row.receipt_done_at or row.receipt_received_at}


_FINAL_BY_RECEIPT = frozenset(s.value for s in _RECEIPT_STATUSES)
