"""Alembic environment.

The application runs migrations in code (``smsgw_adapters.sql.migrate``) and
hands over its own connection in ``config.attributes["connection"]``. The
alembic command line (for writing a revision: ``alembic -c
src/smsgw_adapters/sql/migrations/alembic.ini revision -m ...``) connects with
``sqlalchemy.url`` or the SMSGW_DATABASE_URL environment variable.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from smsgw_adapters.sql.schema import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=True,  # SQLite alters tables only by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("SMSGW_DATABASE_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url or SMSGW_DATABASE_URL to run migrations")
    return url


async def _run_with_own_engine() -> None:
    from smsgw_adapters.sql.engine import create_engine

    engine = create_engine(_url())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_configure)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
elif (given := config.attributes.get("connection")) is not None:
    _configure(given)
else:
    asyncio.run(_run_with_own_engine())
