"""The backends every contract test runs against.

A backend is an async context manager yielding a fresh, empty store's unit of
work factory. MariaDB gets a database of this test run (tests/mariadb.py); when
it is unreachable its tests skip, or fail under SMSGW_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.mariadb import mariadb_database

from smsgw_adapters.sql import create_engine, sql_uow_factory, upgrade_to_head
from smsgw_adapters.sql.schema import metadata
from smsgw_core.ports import UnitOfWorkFactory
from smsgw_core.testing import InMemoryDatabase

BACKEND_NAMES = ["memory", "sqlite", "mariadb"]

Backend = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[UnitOfWorkFactory]]


@asynccontextmanager
async def memory_backend(request: pytest.FixtureRequest) -> AsyncIterator[UnitOfWorkFactory]:
    yield InMemoryDatabase().uow


@asynccontextmanager
async def sqlite_backend(request: pytest.FixtureRequest) -> AsyncIterator[UnitOfWorkFactory]:
    template: Path = request.getfixturevalue("sqlite_template")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    database = tmp_path / "contract.db"
    shutil.copyfile(template, database)  # a migrated copy: far faster than migrating
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        yield sql_uow_factory(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def mariadb_backend(request: pytest.FixtureRequest) -> AsyncIterator[UnitOfWorkFactory]:
    url: str = request.getfixturevalue("mariadb_migrated")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for table in metadata.sorted_tables:
                await connection.execute(text(f"TRUNCATE TABLE {table.name}"))
        yield sql_uow_factory(engine)
    finally:
        await engine.dispose()


BACKENDS: dict[str, Backend] = {
    "memory": memory_backend,
    "sqlite": sqlite_backend,
    "mariadb": mariadb_backend,
}


def _migrate(url: str) -> None:
    async def migrate() -> None:
        engine = create_engine(url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    # Called from inside a test's running event loop (through getfixturevalue),
    # so the migration gets a loop of its own in another thread.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, migrate()).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    database = tmp_path_factory.mktemp("template") / "template.db"
    # Disposing the engine checkpoints the WAL, so the file alone is the database.
    _migrate(f"sqlite+aiosqlite:///{database}")
    return database


@pytest.fixture(scope="session")
def mariadb_migrated() -> Iterator[str]:
    with mariadb_database("contract") as url:
        _migrate(url)
        yield url


@pytest.fixture(params=BACKEND_NAMES)
async def uow_factory(request: pytest.FixtureRequest) -> AsyncIterator[UnitOfWorkFactory]:
    async with BACKENDS[request.param](request) as factory:
        yield factory
