"""What only MariaDB shows of the schema: the precision of its timestamps."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from smsgw_adapters.sql.schema import metadata
from smsgw_adapters.sql.types import UtcDateTime


async def test_fractional_timestamps_keep_microseconds(mariadb_migrated: str) -> None:
    wanted = {
        (table.name, column.name): 6 if column.type.fractional else 0
        for table in metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, UtcDateTime)
    }
    assert wanted[("sms_status", "updated_at")] == 6  # accept→delivered latency is sub-second
    engine = create_async_engine(mariadb_migrated)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text(
                "SELECT TABLE_NAME, COLUMN_NAME, DATETIME_PRECISION FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND DATA_TYPE = 'datetime'"
            ))
            found = {(t, c): int(p) for t, c, p in rows}
    finally:
        await engine.dispose()
    assert found == wanted
