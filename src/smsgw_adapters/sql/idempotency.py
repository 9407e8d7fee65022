"""Stored responses of requests sent with an Idempotency-Key."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from smsgw_adapters.sql.repository import SqlRepository
from smsgw_adapters.sql.schema import idempotency_keys
from smsgw_core.errors import DuplicateIdempotencyKey
from smsgw_core.ports import StoredResponse

_idem = idempotency_keys.c


class SqlIdempotency(SqlRepository):
    async def get(self, customer_id: int, key: str) -> StoredResponse | None:
        found = await self._conn.execute(
            sa.select(_idem.request_hash, _idem.response).where(
                _idem.user_id == customer_id, _idem.idem_key == key
            )
        )
        row = found.first()
        return None if row is None else StoredResponse(row.request_hash, row.response)

    async def add(self, customer_id: int, key: str, stored: StoredResponse, at: datetime) -> None:
        try:
            await self._conn.execute(
                idempotency_keys.insert().values(
                    user_id=customer_id,
                    idem_key=key,
                    request_hash=stored.request_hash,
                    response=stored.response,
                    created_at=at,
                )
            )
        except IntegrityError:
            raise DuplicateIdempotencyKey(key) from None
