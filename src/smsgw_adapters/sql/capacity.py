"""The capped operators' shared schedule: one row per operator, the time its next
send may go, in the database's clock (so the worker hosts' clocks do not matter)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.sql.schema import operator_capacity

_c = operator_capacity.c


class SqlOperatorCapacity:
    def __init__(self, engine: AsyncEngine, ticks: Callable[[], float] | None = None) -> None:
        """`ticks`: seconds, as time.monotonic, for a clock moved by hand (tests); by
        default the database's, the one clock every worker host shares."""
        self.engine = engine
        self.ticks = ticks
        self._known: set[str] = set()

    async def reserve(self, operator: str, sends: int, per_s: float) -> float:
        async with self.engine.begin() as conn:
            if operator not in self._known:
                await conn.execute(
                    operator_capacity.insert()
                    .prefix_with("IGNORE", dialect="mysql")
                    .prefix_with("OR IGNORE", dialect="sqlite")
                    .values(operator=operator, next_free_s=0.0))
                self._known.add(operator)
            now = self.ticks() if self.ticks is not None else float(
                (await conn.execute(sa.select(_now(conn.dialect.name)))).scalar_one())
            next_free = float((await conn.execute(
                sa.select(_c.next_free_s).where(_c.operator == operator).with_for_update()
            )).scalar_one())
            start = max(next_free, now)
            await conn.execute(operator_capacity.update().where(_c.operator == operator)
                               .values(next_free_s=start + sends / per_s))
        return start - now


def _now(dialect: str) -> sa.ColumnElement[float]:
    """The database's time, in seconds since the epoch, to the microsecond."""
    if dialect == "sqlite":
        return sa.literal_column("(julianday('now') - 2440587.5) * 86400.0")
    return sa.literal_column("UNIX_TIMESTAMP(NOW(6))")
