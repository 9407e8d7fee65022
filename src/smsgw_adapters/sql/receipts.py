"""The receipts operators sent: the first for each (operator, message id).

A row is inserted before the recipient it names is looked for, and read with
a lock before a recipient's answer is applied (services/receipts.py): of a
receipt and the answer naming its id, committed at the same time by two
processes, at least one transaction sees the other's row, waiting for it if
need be (or the database picks one to run again: a deadlock is a
TransientConflict, and the caller re-runs the transaction).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from smsgw_adapters.sql.repository import SqlRepository
from smsgw_adapters.sql.schema import operator_receipts, sms_status
from smsgw_core.errors import TransientConflict
from smsgw_core.receipts import OperatorMessage, Receipt, Reported

_r = operator_receipts.c
_FOR_IDS = (
    sa.select(operator_receipts)
    .where(_r.operator == sa.bindparam("operator"),
           _r.message_id.in_(sa.bindparam("message_ids", expanding=True)))
    .order_by(_r.received_at)
    .with_for_update()
)
_ORPHANS = (
    sa.select(operator_receipts)
    .where(_r.kept == sa.true(),
           _r.received_at < sa.bindparam("before", type_=_r.received_at.type),
           ~sa.exists().where(sms_status.c.provider == _r.operator,
                              sms_status.c.message_id == _r.message_id))
    .order_by(_r.received_at)
    .limit(sa.bindparam("limit"))
    .with_for_update()
)
_NAMED = (  # the ids of these that a recipient has
    sa.select(sms_status.c.message_id)
    .where(sms_status.c.provider == sa.bindparam("operator"),
           sms_status.c.message_id.in_(sa.bindparam("message_ids", expanding=True)))
)


class SqlReceipts(SqlRepository):
    async def add(self, receipts: Sequence[Receipt]) -> list[bool]:
        first: dict[OperatorMessage, Receipt] = {}
        for receipt in receipts:
            first.setdefault(receipt.about, receipt)
        known: set[OperatorMessage] = set()
        for operator, ids in _by_operator(first).items():
            rows = await self._conn.execute(
                _FOR_IDS, {"operator": operator, "message_ids": ids})
            known.update(OperatorMessage(operator, row.message_id) for row in rows)
        new = [r for about, r in first.items() if about not in known]
        if new:
            try:
                await self._conn.execute(operator_receipts.insert(), [_row(r) for r in new])
            except IntegrityError as exc:
                # Another intake inserted one of these ids since the read (its
                # transaction committed while ours waited): run ours again, it will
                # see that row and count a duplicate.
                raise TransientConflict(f"receipt inserted concurrently: {exc.orig}") from exc
        # True once per inserted id, at its first position: by position, not by
        # identity (the same Receipt object may come twice in one batch).
        taken = {r.about for r in new}
        result = []
        for receipt in receipts:
            result.append(receipt.about in taken)
            taken.discard(receipt.about)
        return result

    async def waiting(self, messages: Collection[OperatorMessage]) -> list[Receipt]:
        found: list[Receipt] = []
        for operator, ids in _by_operator(messages).items():
            rows = await self._conn.execute(
                _FOR_IDS, {"operator": operator, "message_ids": ids})
            found.extend(_receipt(row) for row in rows)
        found.sort(key=lambda r: r.received_at)
        return found

    async def matched(self, messages: Collection[OperatorMessage]) -> None:
        for operator, ids in _by_operator(messages).items():
            await self._conn.execute(
                operator_receipts.update()
                .where(_r.operator == operator, _r.message_id.in_(ids), _r.kept == sa.true())
                .values(kept=False))

    async def expire(self, received_before: datetime, limit: int) -> list[Receipt]:
        rows = (await self._conn.execute(
            _ORPHANS, {"before": received_before, "limit": limit})).all()
        gone = [_receipt(row) for row in rows]
        # Looked at again now that they are locked, in a statement of its own: the
        # locking read's NOT EXISTS saw the recipients as they were when it began
        # (READ COMMITTED), so an answer that applied one of these receipts and
        # committed while that read waited for its lock was missed there.
        named: set[OperatorMessage] = set()
        for operator, ids in _by_operator([r.about for r in gone]).items():
            named.update(OperatorMessage(operator, message_id) for (message_id,) in (
                await self._conn.execute(_NAMED, {"operator": operator, "message_ids": ids})))
        gone = [r for r in gone if r.about not in named]
        for operator, ids in _by_operator([r.about for r in gone]).items():
            await self._conn.execute(operator_receipts.delete().where(
                _r.operator == operator, _r.message_id.in_(ids)))
        return gone


def _by_operator(messages: Collection[OperatorMessage]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for about in messages:
        grouped.setdefault(about.operator, []).append(about.message_id)
    return grouped


def _row(r: Receipt) -> dict[str, Any]:
    return {"operator": r.about.operator, "message_id": r.about.message_id,
            "status": r.reported.value, "error_code": r.error_code,
            "done_at": r.done_at, "received_at": r.received_at, "kept": True}


def _receipt(row: sa.Row[Any]) -> Receipt:
    return Receipt(OperatorMessage(row.operator, row.message_id), Reported(row.status),
                   row.error_code, row.done_at, row.received_at)
