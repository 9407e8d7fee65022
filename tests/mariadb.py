"""Create and drop a MariaDB database of this test run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy import text
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

    _run(lambda: execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield f"{mariadb_server_url()}/{name}"
    finally:
        _run(lambda: execute(f"DROP DATABASE IF EXISTS `{name}`"))
