"""OperatorCapacity: one schedule per operator, shared by whoever reserves from it."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from smsgw_adapters.sql import create_engine
from smsgw_adapters.sql.capacity import SqlOperatorCapacity
from smsgw_core.ports import OperatorCapacity
from smsgw_core.testing import InMemoryCapacity


@pytest.fixture(params=["memory", "sqlite", "mariadb"])
async def capacity(request: pytest.FixtureRequest) -> AsyncIterator[OperatorCapacity]:
    if request.param == "memory":
        yield InMemoryCapacity(time.monotonic)
        return
    if request.param == "sqlite":
        database = request.getfixturevalue("tmp_path") / "capacity.db"
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, database)
        url = f"sqlite+aiosqlite:///{database}"
    else:
        url = request.getfixturevalue("mariadb_migrated")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM operator_capacity"))
        yield SqlOperatorCapacity(engine)
    finally:
        await engine.dispose()


async def test_reservations_follow_one_another_at_the_rate(capacity: OperatorCapacity) -> None:
    assert await capacity.reserve("A", 10, 100.0) == pytest.approx(0.0, abs=0.02)
    # The next 10 begin where those end: 0.1 s on (less what the call itself took).
    assert await capacity.reserve("A", 10, 100.0) == pytest.approx(0.1, abs=0.03)
    assert await capacity.reserve("A", 5, 100.0) == pytest.approx(0.2, abs=0.04)
    # Another operator's schedule is its own.
    assert await capacity.reserve("B", 10, 100.0) == pytest.approx(0.0, abs=0.02)


async def test_capacity_not_reserved_is_not_saved_up(capacity: OperatorCapacity) -> None:
    await capacity.reserve("A", 2, 100.0)
    await asyncio.sleep(0.1)
    # Idle time earns nothing: the next reservation starts now, not in the past.
    assert await capacity.reserve("A", 2, 100.0) == pytest.approx(0.0, abs=0.02)
    assert await capacity.reserve("A", 2, 100.0) == pytest.approx(0.02, abs=0.02)


async def test_concurrent_reservations_never_overlap(capacity: OperatorCapacity) -> None:
    async def start() -> float:
        delay = await capacity.reserve("A", 10, 100.0)
        return time.monotonic() + delay  # when this slot of 0.1 s begins

    starts = sorted(await asyncio.gather(*(start() for _ in range(8))))
    # Eight disjoint slots of 0.1 s each, back to back, whatever order they were taken in.
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.05 for gap in gaps), gaps  # 0.1 s, less the waking up of each
    assert starts[-1] - starts[0] == pytest.approx(0.7, abs=0.15)
