"""Per-recipient message rows and their state machine, enforced by conditional updates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from smsgw_adapters.sql.repository import SqlRepository
from smsgw_adapters.sql.schema import sms_status
from smsgw_core.errors import InvalidTransition
from smsgw_core.messages import MessageType, RecipientMessage, SmsStatus
from smsgw_core.ports import HistoryFilter

_sms = sms_status.c
UNFINISHED = (SmsStatus.PENDING.value, SmsStatus.SENDING.value)


class SqlMessages(SqlRepository):
    async def add(self, messages: Sequence[RecipientMessage]) -> None:
        if not messages:
            return
        try:
            await self._conn.execute(sms_status.insert(), [_row(m) for m in messages])
        except IntegrityError as exc:
            # The in-memory repository raises ValueError for the same mistake.
            raise ValueError(f"duplicate recipient in {messages[0].sms_identifier}") from exc

    async def claim(self, sms_identifier: str, at: datetime) -> list[str]:
        unfinished = sa.and_(_sms.sms_identifier == sms_identifier, _sms.status.in_(UNFINISHED))
        # FOR UPDATE keeps a concurrent finish() from slipping between the read
        # and the update on MySQL; SQLite's writer lock already excludes it.
        rows = (await self._conn.execute(
            sa.select(_sms.id, _sms.recipient).where(unfinished).order_by(_sms.id)
            .with_for_update()
        )).all()
        if rows:
            # By primary key, the rows just locked: the optimizer may take another
            # index for a second scan by identifier, whose locks two concurrent
            # claims of one SMS would take in opposite orders (a deadlock).
            await self._conn.execute(
                sms_status.update()
                .where(_sms.id.in_([row.id for row in rows]))
                .values(status=SmsStatus.SENDING.value, updated_at=at)
            )
        return [row.recipient for row in rows]

    async def finish(
        self, sms_identifier: str, recipient: str, status: SmsStatus, provider: str, at: datetime
    ) -> bool:
        if not status.terminal:
            raise InvalidTransition(SmsStatus.SENDING.value, status.value)
        values: dict[str, Any] = {"status": status.value, "updated_at": at}
        if provider:  # as RecipientMessage.moved_to: an empty provider keeps the old one
            values["provider"] = provider
        moved = await self._conn.execute(
            sms_status.update()
            .where(
                _sms.sms_identifier == sms_identifier,
                _sms.recipient == recipient,
                _sms.status == SmsStatus.SENDING.value,
            )
            .values(values)
        )
        return moved.rowcount == 1

    async def history(
        self, query: HistoryFilter, limit: int, before: int | None
    ) -> list[tuple[int, RecipientMessage]]:
        select = (
            sa.select(sms_status)
            .where(_sms.user_id == query.user_id)
            .order_by(_sms.id.desc())
            .limit(limit)
        )
        if query.status is not None:
            select = select.where(_sms.status == query.status.value)
        if query.sms_identifier is not None:
            select = select.where(_sms.sms_identifier == query.sms_identifier)
        if before is not None:
            select = select.where(_sms.id < before)
        rows = await self._conn.execute(select)
        return [(row.id, _message(row)) for row in rows]


def _row(m: RecipientMessage) -> dict[str, Any]:
    return {
        "user_id": m.user_id,
        "status": m.status.value,
        "type": m.type.value,
        "recipient": m.recipient,
        "provider": m.provider,
        "sms_identifier": m.sms_identifier,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    }


def _message(row: sa.Row[Any]) -> RecipientMessage:
    return RecipientMessage(
        sms_identifier=row.sms_identifier,
        user_id=row.user_id,
        recipient=row.recipient,
        type=MessageType(row.type),
        status=SmsStatus(row.status),
        provider=row.provider,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
