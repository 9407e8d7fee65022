"""What only MariaDB shows of the schema: the precision of its timestamps, the
collation of its identifiers."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from tests.mariadb import mariadb_database

from smsgw_adapters.sql import create_engine, upgrade_to_head
from smsgw_adapters.sql.migrate import alembic_config
from smsgw_adapters.sql.schema import metadata
from smsgw_adapters.sql.types import BYTEWISE_COLLATION, UtcDateTime


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


async def test_identifiers_compare_byte_for_byte(mariadb_migrated: str) -> None:
    # schema.py marks them (types.identifier); migration 0004 makes them so.
    wanted = {
        (table.name, column.name)
        for table in metadata.tables.values()
        for column in table.columns
        if BYTEWISE_COLLATION in str(column.type.compile(dialect=mysql.dialect()))
    }
    assert ("idempotency_keys", "idem_key") in wanted
    engine = create_async_engine(mariadb_migrated)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text(
                "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND COLLATION_NAME IS NOT NULL"
            ))
            found = {(t, c) for t, c, collation in rows if collation == BYTEWISE_COLLATION}
    finally:
        await engine.dispose()
    assert found == wanted


async def test_the_identifier_collation_migrates_down_and_up() -> None:
    with mariadb_database("collation") as url:
        engine = create_engine(url)
        try:
            await upgrade_to_head(engine)

            def downgrade(connection: sa.Connection) -> None:
                command.downgrade(alembic_config(connection), "0003")

            async with engine.begin() as connection:
                await connection.run_sync(downgrade)
            assert await _idem_key_collation(engine) == "utf8mb4_general_ci"  # the table's
            await upgrade_to_head(engine)
            assert await _idem_key_collation(engine) == BYTEWISE_COLLATION
        finally:
            await engine.dispose()


async def _idem_key_collation(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str(await conn.scalar(sa.text(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA ="
            " DATABASE() AND TABLE_NAME = 'idempotency_keys' AND COLUMN_NAME = 'idem_key'"
        )))
