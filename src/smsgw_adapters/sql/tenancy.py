"""Customers and API keys in SQL."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from smsgw_adapters.sql.repository import SqlRepository
from smsgw_adapters.sql.schema import api_keys, customers, user_balances
from smsgw_core.customers import Customer
from smsgw_core.keys import ApiKey

_c = customers.c
_k = api_keys.c

_LOWEST_GAP = sa.text(
    "SELECT MIN(t.id + 1) FROM (SELECT 0 AS id UNION ALL SELECT id FROM customers"
    " UNION ALL SELECT user_id FROM user_balances) t"
    " WHERE t.id < :highest"
    " AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = t.id + 1)"
    " AND NOT EXISTS (SELECT 1 FROM user_balances b WHERE b.user_id = t.id + 1)")


class SqlCustomers(SqlRepository):
    async def get(self, customer_id: int) -> Customer | None:
        found = await self._conn.execute(sa.select(customers).where(_c.id == customer_id))
        row = found.first()
        return None if row is None else Customer(
            row.id, row.name, row.created_at, row.max_recipients_per_s)

    async def add(self, customer: Customer) -> bool:
        # A duplicate fails this statement only (MySQL and SQLite roll back the
        # statement, not the transaction), as for idempotency keys.
        try:
            await self._conn.execute(customers.insert().values(
                id=customer.id, name=customer.name, created_at=customer.created_at,
                max_recipients_per_s=customer.max_recipients_per_s))
        except IntegrityError:
            return False
        return True

    async def free_id(self, highest: int) -> int | None:
        found = await self._conn.execute(sa.select(
            sa.func.coalesce(sa.select(sa.func.max(_c.id)).scalar_subquery(), 0),
            sa.func.coalesce(sa.select(sa.func.max(user_balances.c.user_id))
                             .scalar_subquery(), 0)))
        above = max(int(n) for n in found.one()) + 1
        if above <= highest:
            return above
        # Every id up to the top is someone's, or one was taken at the top: the
        # lowest gap (each step an index lookup).
        gap = await self._conn.execute(_LOWEST_GAP, {"highest": highest})
        lowest = gap.scalar()
        return None if lowest is None else int(lowest)

    async def limits(self) -> dict[int, int]:
        found = await self._conn.execute(sa.select(_c.id, _c.max_recipients_per_s)
                                         .where(_c.max_recipients_per_s.is_not(None)))
        return {int(row.id): int(row.max_recipients_per_s) for row in found}

    async def set_limit(self, customer_id: int, max_recipients_per_s: int | None) -> bool:
        done = await self._conn.execute(customers.update().where(_c.id == customer_id)
                                        .values(max_recipients_per_s=max_recipients_per_s))
        return bool(done.rowcount)


class SqlKeys(SqlRepository):
    async def add(self, key: ApiKey) -> None:
        await self._conn.execute(api_keys.insert().values(
            key_id=key.key_id, customer_id=key.customer_id, name=key.name,
            secret_hash=key.secret_hash, created_at=key.created_at,
            last_used_at=key.last_used_at, revoked_at=key.revoked_at))

    async def get(self, key_id: str) -> ApiKey | None:
        found = await self._conn.execute(sa.select(api_keys).where(_k.key_id == key_id))
        row = found.first()
        return None if row is None else _key(row)

    async def listed(self, customer_id: int | None) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(_k.created_at, _k.key_id)
        if customer_id is not None:
            query = query.where(_k.customer_id == customer_id)
        return [_key(row) for row in await self._conn.execute(query)]

    async def revoke(self, key_id: str, at: datetime) -> bool:
        done = await self._conn.execute(api_keys.update().where(
            _k.key_id == key_id, _k.revoked_at.is_(None)).values(revoked_at=at))
        return bool(done.rowcount)

    async def touch(self, used: Mapping[str, datetime]) -> None:
        # One statement executed for many keys (executemany), in the caller's transaction.
        await self._conn.execute(
            api_keys.update().where(
                _k.key_id == sa.bindparam("used_key"),
                sa.or_(_k.last_used_at.is_(None), _k.last_used_at < sa.bindparam("at")))
            .values(last_used_at=sa.bindparam("at")),
            [{"used_key": key_id, "at": at} for key_id, at in used.items()])


def _key(row: Any) -> ApiKey:
    return ApiKey(row.key_id, row.customer_id, row.name, row.secret_hash, row.created_at,
                  row.last_used_at, row.revoked_at)
