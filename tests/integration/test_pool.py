"""The MariaDB pool pings a connection only after it sat idle (PING_AFTER_IDLE_S):
one that died in the pool meanwhile is replaced before use, and one that died
while just back from work fails its statement once, after which the pool has
replaced every connection."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.sql import engine as engines
from tests.integration.forwarder import Forwarder
from tests.mariadb import mariadb_database
from tests.services import MARIADB_HOST, MARIADB_PORT


@pytest.fixture
def proxied_engine() -> Iterator[tuple[AsyncEngine, Forwarder]]:
    proxy = Forwarder((MARIADB_HOST, MARIADB_PORT))
    proxy.accept()
    try:
        with mariadb_database("pool") as url:
            parts = urlsplit(url)
            through = urlunsplit(parts._replace(
                netloc=f"{parts.username or 'root'}@127.0.0.1:{proxy.port}"))
            yield engines.create_engine(through), proxy
    finally:
        proxy.close()


async def _one(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT 1"))).scalar_one())


async def test_a_connection_that_died_idle_is_replaced_before_use(
    proxied_engine: tuple[AsyncEngine, Forwarder], monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, proxy = proxied_engine
    monkeypatch.setattr(engines, "PING_AFTER_IDLE_S", 0.0)  # every pooled connection is "idle"
    try:
        assert await _one(engine) == 1
        proxy.close()  # the pooled connection dies
        proxy.accept()
        assert await _one(engine) == 1  # pinged, found dead, replaced: no error
    finally:
        await engine.dispose()


async def test_a_connection_back_from_work_is_not_pinged(
    proxied_engine: tuple[AsyncEngine, Forwarder], monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, proxy = proxied_engine
    monkeypatch.setattr(engines, "PING_AFTER_IDLE_S", 3600.0)
    try:
        assert await _one(engine) == 1
        proxy.close()
        proxy.accept()
        with pytest.raises(OperationalError):
            await _one(engine)  # no ping: the statement meets the dead socket
        assert await _one(engine) == 1  # and the pool replaced it
    finally:
        await engine.dispose()
