"""OperatorCapacity: one schedule per operator, shared by whoever reserves from it.

The shared contract runs on a clock moved by hand (FakeTicks), so every figure is
exact: time passes only where a test says so. What the SQL schedule keeps by
default, the database's own clock, is tested on its own, by bounds that hold on
a machine of any speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.sql import create_engine
from smsgw_adapters.sql.capacity import SqlOperatorCapacity
from smsgw_core.ports import OperatorCapacity
from smsgw_core.testing import FakeTicks, InMemoryCapacity


@pytest.fixture
def ticks() -> FakeTicks:
    return FakeTicks()


@contextlib.asynccontextmanager
async def emptied(request: pytest.FixtureRequest, database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated `database` ("sqlite" or "mariadb") with no schedule yet."""
    if database == "sqlite":
        path = request.getfixturevalue("tmp_path") / "capacity.db"
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("mariadb_migrated")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM operator_capacity"))
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(params=["memory", "sqlite", "mariadb"])
async def capacity(
    request: pytest.FixtureRequest, ticks: FakeTicks,
) -> AsyncIterator[OperatorCapacity]:
    if request.param == "memory":
        yield InMemoryCapacity(ticks)
        return
    async with emptied(request, request.param) as engine:
        yield SqlOperatorCapacity(engine, ticks)


@pytest.fixture(params=["sqlite", "mariadb"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[AsyncEngine]:
    async with emptied(request, request.param) as made:
        yield made


async def test_reservations_follow_one_another_at_the_rate(
    capacity: OperatorCapacity, ticks: FakeTicks,
) -> None:
    assert await capacity.reserve("A", 10, 100.0) == 0.0
    # The next 10 begin where those end: 0.1 s on, less what has passed since.
    assert await capacity.reserve("A", 10, 100.0) == pytest.approx(0.1)
    ticks.advance(0.05)
    assert await capacity.reserve("A", 5, 100.0) == pytest.approx(0.15)
    # Another operator's schedule is its own.
    assert await capacity.reserve("B", 10, 100.0) == 0.0


async def test_capacity_not_reserved_is_not_saved_up(
    capacity: OperatorCapacity, ticks: FakeTicks,
) -> None:
    await capacity.reserve("A", 2, 100.0)
    ticks.advance(0.1)
    # Idle time earns nothing: the next reservation starts now, not in the past.
    assert await capacity.reserve("A", 2, 100.0) == 0.0
    assert await capacity.reserve("A", 2, 100.0) == pytest.approx(0.02)


async def test_concurrent_reservations_never_overlap(capacity: OperatorCapacity) -> None:
    # The clock stands still: eight reservations at the same instant get eight
    # disjoint slots of 0.1 s, back to back, whatever order they were taken in.
    delays = sorted(await asyncio.gather(*(capacity.reserve("A", 10, 100.0) for _ in range(8))))
    assert delays == pytest.approx([n * 0.1 for n in range(8)])


async def test_by_default_the_schedule_is_kept_on_the_databases_clock(
    engine: AsyncEngine,
) -> None:
    capacity = SqlOperatorCapacity(engine)
    host_before = time.time()
    assert await capacity.reserve("A", 1000, 100.0) == 0.0  # free: it starts now
    later = await capacity.reserve("A", 1000, 100.0)
    host_after = time.time()
    # 10 s of sends, less what passed between the two reservations on the database's
    # clock (no more than passed on this host's around them).
    assert 10.0 - (host_after - host_before) <= later <= 10.0
    async with engine.connect() as connection:
        next_free = (await connection.execute(text(
            "SELECT next_free_s FROM operator_capacity WHERE operator = 'A'"))).scalar_one()
    # Seconds since the epoch, as the database tells them (it runs on this host here):
    # another unit or origin would be off by far more than a minute.
    assert abs(next_free - (host_before + 20.0)) < 60.0
