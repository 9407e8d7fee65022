"""Create and drop a MariaDB database of this test run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.services import mariadb_server_url, need_mariadb, unique_name


def _run(coro_factory) -> None:  # type: ignore[no-untyped-def]
    # Fixtures may be set up from inside a running event loop: use a thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro_factory()).result()


@contextmanager
def mariadb_database(purpose: str) -> Iterator[str]:
    """Yield the URL of a new, empty database; drop it afterwards."""
    need_mariadb()
    name = unique_name(purpose)

    async def execute(sql: str) -> None:
        engine = create_async_engine(mariadb_server_url())
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    async def drop() -> None:
        engine = create_async_engine(mariadb_server_url())
        try:
            async with engine.connect() as conn:
                # A process still connected (a gateway a test tears down after its
                # database) may hold a table's metadata lock in an open transaction,
                # and DROP DATABASE would wait for it without end: end them first.
                found = await conn.execute(text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = :db AND id <> CONNECTION_ID()"), {"db": name})
                for (connection_id,) in found.all():
                    with contextlib.suppress(DBAPIError):  # it ended meanwhile
                        await conn.execute(text(f"KILL {int(connection_id)}"))
                await conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        finally:
            await engine.dispose()

    _run(lambda: execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield f"{mariadb_server_url()}/{name}"
    finally:
        _run(drop)
