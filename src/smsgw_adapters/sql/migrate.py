"""Schema migrations run from code: the package carries its Alembic scripts."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.sql.types import MYSQL_DIALECTS

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK = "smsgw_migrations"
_LOCK_WAIT_SECONDS = 300


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    # Config values go through ConfigParser interpolation, where % is special.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Apply every pending migration; a no-op on a database already at head.

    Safe to call from several processes starting at once: SQLite serializes
    them with BEGIN IMMEDIATE, MySQL with a named lock (its DDL commits
    implicitly, so a transaction alone would not keep two upgrades apart).
    """
    async with engine.connect() as connection:
        mysql = connection.dialect.name in MYSQL_DIALECTS
        if mysql:
            got = await connection.scalar(
                text("SELECT GET_LOCK(:name, :wait)"),
                {"name": _LOCK, "wait": _LOCK_WAIT_SECONDS},
            )
            await connection.commit()  # the lock is the session's, not the transaction's
            if got != 1:
                raise TimeoutError(f"another process holds the {_LOCK} lock")
        try:
            # Committed before the lock goes: the next process must see the last
            # version stamp, or it applies that migration a second time.
            async with connection.begin():
                await connection.run_sync(_upgrade)
        finally:
            if mysql:
                await connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _LOCK})


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def at_head(engine: AsyncEngine) -> bool:
    """True when the database has every migration this package carries."""
    async with engine.connect() as connection:
        return await connection.run_sync(_at_head)


@functools.cache
def _script_heads() -> frozenset[str]:
    # Read once: the scripts ship with the package and /readyz asks often.
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def _at_head(connection: Connection) -> bool:
    current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == _script_heads()
