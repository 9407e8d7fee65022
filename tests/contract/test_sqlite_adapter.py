"""What only the SQLite engine shows: migrations, connection settings, storage format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from contract_helpers import T0, topup
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.sql import at_head, create_engine, sql_uow_factory, upgrade_to_head
from smsgw_adapters.sql.migrate import alembic_config
from smsgw_adapters.sql.schema import metadata

TABLES = {
    "alembic_version", "user_balances", "user_transactions", "sms_status", "outbox_events",
    "idempotency_keys", "customers", "api_keys", "operator_capacity", "operator_receipts",
    "webhook_endpoints", "webhook_events", "webhook_attempts",
}
INDEXES = {
    "idx_user_transactions_user_id", "idx_user_transactions_user_id_id",
    "idx_sms_status_user_identifier", "idx_sms_status_user_status_created",
    "idx_sms_status_user_id_id", "idx_outbox_pending", "idx_outbox_claim",
    "idx_outbox_status_updated", "idx_api_keys_customer", "idx_outbox_fair",
    "idx_sms_status_provider_message", "idx_operator_receipts_kept",
    "idx_webhook_events_due", "idx_webhook_events_list", "idx_webhook_events_age",
    "idx_webhook_attempts_event",
}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'smsgw.db'}")
    yield engine
    await engine.dispose()


async def _scalars(engine: AsyncEngine, sql: str) -> list[object]:
    async with engine.connect() as connection:
        return list(await connection.scalars(sa.text(sql)))


async def test_migrations_create_exactly_the_schema(engine: AsyncEngine) -> None:
    assert not await at_head(engine)
    await upgrade_to_head(engine)
    await upgrade_to_head(engine)  # a second run finds nothing to do
    assert await at_head(engine)
    assert set(await _scalars(engine, "SELECT name FROM sqlite_master WHERE type='table'")) == (
        TABLES
    )
    indexes = await _scalars(
        engine, "SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
    )
    assert set(indexes) == INDEXES


async def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'smsgw.db'}"
    engines = [create_engine(url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade_to_head(engine) for engine in engines))
        assert await at_head(engines[0])
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_schema_module_matches_the_migrations(engine: AsyncEngine) -> None:
    await upgrade_to_head(engine)

    def differences(connection: sa.Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_downgrade_to_nothing_and_back(engine: AsyncEngine) -> None:
    await upgrade_to_head(engine)

    def downgrade(connection: sa.Connection) -> None:
        command.downgrade(alembic_config(connection), "base")

    async with engine.begin() as connection:
        await connection.run_sync(downgrade)
    assert await _scalars(engine, "SELECT name FROM sqlite_master WHERE type='table'") == [
        "alembic_version"
    ]
    await upgrade_to_head(engine)
    assert await at_head(engine)


async def test_connections_are_tuned_for_concurrent_writers(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        settings = [
            await connection.scalar(sa.text(f"PRAGMA {name}"))
            for name in ("journal_mode", "synchronous", "busy_timeout")
        ]
    assert settings == ["wal", 1, 30_000]  # synchronous 1 is NORMAL


async def test_timestamps_are_stored_as_naive_utc(engine: AsyncEngine) -> None:
    await upgrade_to_head(engine)
    local = T0.astimezone(ZoneInfo("Asia/Tehran"))
    async with sql_uow_factory(engine)() as uow:
        await uow.ledger.apply(topup("t1", 1, 5, local))
        await uow.commit()
    assert await _scalars(engine, "SELECT created_at FROM user_transactions") == [
        "2026-01-01 12:00:00.000000"
    ]


async def test_a_naive_datetime_is_refused(engine: AsyncEngine) -> None:
    await upgrade_to_head(engine)
    async with sql_uow_factory(engine)() as uow:
        with pytest.raises(StatementError, match="naive datetime"):
            await uow.ledger.apply(topup("t1", 1, 5, datetime(2026, 1, 1)))


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:", "postgresql+asyncpg://db/x"]
)
def test_unsupported_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        create_engine(url)
