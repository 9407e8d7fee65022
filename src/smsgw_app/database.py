"""The database alone: the part of the composition root that owns the engine.

`Container` (container.py) embeds it; the commands that need nothing but the
database (migrate, keys, outbox, seed, the load test's delivery watch) use it
alone, through `processes.database`, without loading the rest of the gateway
(the API and the broker's client take seconds to import).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.sql.engine import (
    StatementObserver,
    create_engine,
    observe_statements,
    upgrade_to_head,
)
from smsgw_adapters.sql.uow import sql_uow_factory
from smsgw_app.config import StartupError, cannot_use
from smsgw_core.services.keys import Keys
from smsgw_core.system import SystemClock, SystemTokens


def sql_engine(url: str, on_statement: StatementObserver | None = None) -> AsyncEngine:
    engine = create_engine(url)
    if on_statement is not None:
        observe_statements(engine, on_statement)
    return engine


async def migrated_engine(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The engine, migrated to head before anything uses it; disposed at shutdown."""
    try:
        await upgrade_to_head(engine)
        yield engine
    finally:
        await engine.dispose()


async def engine_as_is(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The engine as the database is (not migrated: a command that only reads or
    fixes rows must not change the schema), disposed at shutdown."""
    try:
        yield engine
    finally:
        await engine.dispose()


class Database(containers.DeclarativeContainer):
    url = providers.Dependency(instance_of=str)  # SMSGW_DATABASE_URL
    # Each statement's observer (the metrics' db_statement, given by Container); none alone.
    on_statement: providers.Provider[StatementObserver | None] = providers.Object(None)

    engine = providers.Singleton(sql_engine, url, on_statement)
    migrated = providers.Resource(migrated_engine, engine)  # to head first; disposed at the end
    opened = providers.Resource(engine_as_is, engine)  # as it is; disposed at the end
    uow = providers.Singleton(sql_uow_factory, engine)
    clock = providers.Singleton(SystemClock)
    keys = providers.Singleton(Keys, uow, clock, providers.Singleton(SystemTokens))


@asynccontextmanager
async def opened(url: str, *, migrate: bool = True) -> AsyncIterator[Database]:
    """The database at `url` (SMSGW_DATABASE_URL) alone, migrated to head first
    unless `migrate` is false.

    Failing to reach or migrate it is a StartupError (one line, exit 2), and so
    is any failure while the command uses it: the database went away meanwhile.
    """
    container = Database(url=url)
    resource = container.migrated if migrate else container.opened
    try:
        await resource.init()  # type: ignore[misc]
        yield container
    except (StartupError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise StartupError(cannot_use("SMSGW_DATABASE_URL", url, exc)) from exc
    finally:
        await container.shutdown_resources()  # type: ignore[misc]
