"""What the database does to a transaction, as the core sees it.

A deadlock or a lock wait timeout is a TransientConflict (the core runs the
transaction again); an unreachable database is StorageUnavailable (503). Groups
of debits and of credits lock accounts in one order, so with the bounded re-run
none of them fails. A failing statement's text carries no parameters.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from contract_helpers import T0, charge, delivery, topup
from sqlalchemy import event, text

from smsgw_adapters.sql import create_engine, sql_uow_factory, upgrade_to_head
from smsgw_adapters.sql.errors import storage_error
from smsgw_adapters.sql.uow import SqlUnitOfWork
from smsgw_core.errors import StorageUnavailable, TransientConflict
from smsgw_core.ledger import Transaction, TransactionType
from smsgw_core.ports import UnitOfWork, UnitOfWorkFactory
from smsgw_core.transactions import ConflictRetry, in_transaction


async def _seed(uow_factory: UnitOfWorkFactory, users: range, amount: int) -> None:
    async with uow_factory() as uow:
        await uow.ledger.credit_many([topup(f"seed-{u}", u, amount) for u in users])
        await uow.commit()


@pytest.mark.parametrize("uow_factory", ["mariadb"], indirect=True)
async def test_a_deadlock_is_a_transient_conflict(uow_factory: UnitOfWorkFactory) -> None:
    await _seed(uow_factory, range(1, 3), 10)
    locked = {1: asyncio.Event(), 2: asyncio.Event()}

    async def cross(first: int, second: int) -> None:
        async with uow_factory() as uow:
            await uow.ledger.apply(topup(f"{first}-then-{second}-a", first, 1))
            locked[first].set()
            await locked[second].wait()
            # Each now waits for the row the other holds: the database picks a victim.
            await uow.ledger.apply(topup(f"{first}-then-{second}-b", second, 1))
            await uow.commit()

    outcomes = await asyncio.gather(cross(1, 2), cross(2, 1), return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["NoneType", "TransientConflict"]
    async with uow_factory() as uow:  # the victim left nothing, the survivor all
        assert [await uow.ledger.balance(u) for u in (1, 2)] == [11, 11]


@pytest.mark.parametrize("uow_factory", ["mariadb"], indirect=True)
async def test_a_lock_wait_timeout_is_a_transient_conflict_and_rolls_back_whole(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _seed(uow_factory, range(1, 3), 10)
    holding, gave_up = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with uow_factory() as uow:
            await uow.ledger.apply(topup("holder", 1, 1))
            holding.set()
            await gave_up.wait()
            await uow.commit()

    async def waiter() -> None:
        await holding.wait()
        try:
            async with uow_factory() as uow:
                assert isinstance(uow, SqlUnitOfWork)
                await uow.connection.execute(text("SET SESSION innodb_lock_wait_timeout = 1"))
                await uow.ledger.apply(topup("waiter-own", 2, 1))
                await uow.ledger.apply(topup("waiter-blocked", 1, 1))  # times out
                await uow.commit()
        finally:
            gave_up.set()

    outcomes = await asyncio.gather(holder(), waiter(), return_exceptions=True)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], TransientConflict)
    # MariaDB rolls back only the timed-out statement: the unit of work rolls back
    # the rest, so the waiter's first credit is gone too.
    async with uow_factory() as uow:
        assert [await uow.ledger.balance(u) for u in (1, 2)] == [11, 10]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
async def test_an_unreachable_database_is_storage_unavailable(
    backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}"  # a directory: SQLite cannot open it
    else:
        url = f"mysql+asyncmy://root@127.0.0.1:{_closed_port()}/nothing"
    engine = create_engine(url)
    try:
        with pytest.raises(StorageUnavailable) as unavailable:
            async with sql_uow_factory(engine)() as uow:
                await uow.ledger.balance(1)
    finally:
        await engine.dispose()
    assert unavailable.value.retry_after_s > 0
    # aiosqlite stops the worker thread of a failed connect in the background:
    # let it hand back its answer before the test's event loop closes.
    await asyncio.sleep(0.1)


def refund(tx_id: str, customer_id: int) -> Transaction:
    return Transaction(tx_id, customer_id, 1, TransactionType.REFUND, "refund", T0)


@pytest.mark.parametrize("uow_factory", ["sqlite", "mariadb"], indirect=True)  # about locks
async def test_debit_and_credit_groups_in_any_order_never_fail(
    uow_factory: UnitOfWorkFactory,
) -> None:
    # As the accept path's groups (debit_many) and the delivery path's refunds
    # (credit_many) race over the same customers, each group naming its
    # accounts in its own order. Refunds applied one by one in group order
    # deadlocked here on MariaDB past the five attempts.
    users = range(1, 31)
    await _seed(uow_factory, users, 1000)
    rng = random.Random(11)
    conflicts = 0

    async def counted_pause(seconds: float) -> None:
        nonlocal conflicts
        conflicts += 1
        await asyncio.sleep(seconds)

    retry = ConflictRetry(sleep=counted_pause)

    async def group(i: int) -> None:
        accounts = rng.sample(users, 12)

        async def body(uow: UnitOfWork) -> None:
            if i % 2:
                await uow.ledger.credit_many([refund(f"r{i}-{u}", u) for u in accounts])
            else:
                assert await uow.ledger.debit_many(
                    [charge(f"c{i}-{u}", u, 1) for u in accounts]
                ) == []
            await uow.commit()

        await in_transaction(uow_factory, body, retry)

    await asyncio.gather(*(group(i) for i in range(120)))
    async with uow_factory() as uow:
        for user in users:
            rows = await uow.ledger.transactions(user, 1000, None)
            assert await uow.ledger.balance(user) == sum(t.amount for _, t in rows)
        total = sum([await uow.ledger.balance(u) or 0 for u in users])
    assert total == 30 * 1000  # as many credits of 1 as debits of 1
    assert conflicts <= 5, "the lock order should leave (almost) nothing to retry"


@pytest.mark.parametrize("uow_factory", ["sqlite", "mariadb"], indirect=True)
async def test_a_failing_statement_shows_no_parameters(
    uow_factory: UnitOfWorkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    secret = delivery("s1", "+989121112233")  # its text and recipient go into the payload
    async with uow_factory() as uow:
        await uow.outbox.add([secret], T0)
        with pytest.raises(Exception) as failed:  # the unique (aggregate_id, event_type)
            await uow.outbox.add([secret], T0)
    logging.getLogger("smsgw.test").error("statement failed", exc_info=failed.value)
    assert "INSERT INTO outbox_events" in caplog.text  # the statement stays, for diagnosis
    assert secret.text not in caplog.text
    assert "+989121112233" not in caplog.text
    assert "hidden due to hide_parameters" in caplog.text


async def test_sqlite_busy_is_a_transient_conflict(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade_to_head(engine)
    await engine.dispose()

    def short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        # After the engine's own 30 s: the test need not wait that long to see it.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=50")
        cursor.close()

    event.listen(engine.sync_engine, "connect", short_busy_timeout)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(TransientConflict):
            async with sql_uow_factory(engine)() as uow:
                await uow.ledger.apply(topup("t1", 1, 1))
    finally:
        writer.rollback()
        writer.close()
    async with sql_uow_factory(engine)() as uow:  # and once it is free, it goes through
        await uow.ledger.apply(topup("t1", 1, 1))
        await uow.commit()
    await engine.dispose()


class _CutMidHandshake:
    """An engine whose connection attempt dies in the driver, as a cut socket makes asyncmy."""

    async def connect(self) -> None:
        raise RuntimeError("Transport does not expose socket instance")


async def test_a_connection_that_fails_in_any_way_is_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable, match="cannot connect: RuntimeError"):
        async with SqlUnitOfWork(_CutMidHandshake()):  # type: ignore[arg-type]
            pass


def test_a_failed_socket_is_storage_unavailable() -> None:
    assert isinstance(storage_error(ConnectionResetError(104, "reset by peer")),
                      StorageUnavailable)
