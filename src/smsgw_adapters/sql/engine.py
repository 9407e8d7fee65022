"""Engines for the two supported databases, configured for the gateway's workload."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from smsgw_adapters.sql.migrate import at_head, upgrade_to_head
from smsgw_adapters.sql.types import MYSQL_DIALECTS
from smsgw_core.backoff import Backoff

__all__ = ["at_head", "create_engine", "observe_statements", "probe", "upgrade_to_head"]

# (operation, seconds) of one SQL statement's round trip
StatementObserver = Callable[[str, float], None]
OPERATIONS = frozenset({"select", "insert", "update", "delete"})
_STARTED = "smsgw.statement_started"

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Another process switching the same new file to WAL holds it for milliseconds:
# look again every 50 ms, until the busy timeout.
WAL_SWITCH_RETRY = Backoff.every(0.05)

# SQLAlchemy puts a failing statement's parameters into the error's text, so an
# ERROR traceback would carry customers' SMS texts, phone numbers and outbox
# payloads into the logs. Both engines hide them; the statement itself
# (placeholders only) stays for diagnosis.
HIDE_PARAMETERS = True


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An engine for ``sqlite+aiosqlite:///path`` or ``mysql+asyncmy://...``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, echo)
    if backend in MYSQL_DIALECTS:
        return _mysql_engine(parsed, echo)
    raise ValueError(f"unsupported database {backend!r}: use sqlite+aiosqlite or mysql+asyncmy")


def _sqlite_engine(url: URL, echo: bool) -> AsyncEngine:
    database = url.database or ""
    if not database or ":memory:" in database or url.query.get("mode") == "memory":
        # Every connection of an in-memory database would share one transaction;
        # the in-memory fakes in smsgw_core.testing are the in-memory option.
        raise ValueError("the SQL adapter needs a SQLite file, not an in-memory database")
    if not database.startswith("file:"):  # a URI filename is left as the caller wrote it
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo, hide_parameters=HIDE_PARAMETERS)
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Stop the sqlite3 module from issuing its own deferred BEGIN; ours follows.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # A writer waits its turn instead of failing with "database is locked"
        # (first, since switching a new file to WAL takes a lock too).
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers never block the writer nor the writer the readers.
        _switch_to_wal(cursor)
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit
        # survives the process being killed (the OS holds the WAL), and only a
        # power loss or OS crash may lose the last commits, never corrupt the file.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Processes starting on one new file at once: SQLite may refuse the switch with
    "database is locked" without calling the busy handler, so wait for it here."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    failures = 0
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            failures += 1
            time.sleep(WAL_SWITCH_RETRY.delay(failures))


def _begin_immediate(connection: Connection) -> None:
    # A deferred transaction that reads and then writes must upgrade its lock,
    # and SQLite refuses the upgrade at once (busy timeout or not) when another
    # writer got there first. Taking the write lock at BEGIN makes writers queue
    # on the busy timeout instead, so every unit of work is serialized.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _mysql_engine(url: URL, echo: bool) -> AsyncEngine:
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})  # texts and names are Unicode
    engine = create_async_engine(
        url,
        echo=echo,
        hide_parameters=HIDE_PARAMETERS,
        pool_recycle=1800,  # under wait_timeout and the idle limits of proxies
        pool_size=10,
        max_overflow=20,
        # No ROLLBACK round trip as a connection goes back to the pool: every
        # unit of work ends its transaction itself (commit, or rollback on the
        # way out), and SQLAlchemy's Connection rolls back one left open on close.
        pool_reset_on_return=None,
        # No gap locks: the relay's SKIP LOCKED scan must not block the API's
        # inserts of new outbox rows, nor redrive's read of sms_status its updates.
        isolation_level="READ COMMITTED",
    )
    _ping_after_idle(engine)
    return engine


# A connection idle in the pool this long is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


def _ping_after_idle(engine: AsyncEngine) -> None:
    """Survive a server restart or failover between uses, as pool_pre_ping does,
    without its round trip on every checkout.

    Under load a connection goes back to work within milliseconds of being
    returned, and pool_pre_ping's ping was one round trip in six of an accept
    group (more of the relay's small transactions). A connection that died
    while in use fails its statement instead, and SQLAlchemy then replaces
    every connection of the pool (a disconnect invalidates the pool), so a
    restart costs the transactions in flight, as it does with pool_pre_ping.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def handed_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED)
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_S:
            return  # new, or back from work a moment ago
        try:
            dbapi_connection.ping(False)
        except Exception as exc:
            # The pool discards this connection and checks out another (a new one).
            raise DisconnectionError(f"ping failed: {type(exc).__name__}") from exc


_RETURNED = "smsgw.returned_at"


def observe_statements(engine: AsyncEngine, observer: StatementObserver) -> None:
    """Report every statement's round trip to `observer`, with its operation.

    The operation is the statement's first keyword, lowercased: select, insert,
    update or delete, else "other" (BEGIN, PRAGMA, DDL, ...). A statement that
    fails is reported too. Timed in the engine's events, so it includes the wait
    for the async driver, i.e. the database's answer.
    """

    def before(conn: Connection, _cursor: Any, _statement: str, *_: Any) -> None:
        conn.info.setdefault(_STARTED, []).append(time.perf_counter())

    def after(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        _report(conn, statement)

    def failed(context: ExceptionContext) -> None:
        if context.connection is not None and context.statement is not None:
            _report(context.connection, context.statement)

    def _report(conn: Connection, statement: str) -> None:
        started: list[float] = conn.info.get(_STARTED) or []
        if not started:
            return
        seconds = time.perf_counter() - started.pop()
        try:
            observer(statement_operation(statement), seconds)
        except Exception:  # a metrics hook must never fail a statement
            return

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    event.listen(engine.sync_engine, "handle_error", failed)


def statement_operation(statement: str) -> str:
    """select / insert / update / delete for such a statement, else "other"."""
    words = statement.lstrip(" \t\r\n(").split(None, 1)
    word = words[0].lower() if words else ""
    return word if word in OPERATIONS else "other"


async def probe(engine: AsyncEngine) -> str | None:
    """None when the database can serve: reachable, present and migrated; else why not.

    For /readyz. A SQLite file deleted or made inaccessible under a running
    process is caught before the pool's open connections hide it (they keep
    the old file open); so is a MySQL database dropped under pooled sessions,
    which still answer.
    """
    if engine.dialect.name == "sqlite":
        problem = _sqlite_file_problem(engine.url.database or "")
        if problem is not None:
            return problem
    async with engine.connect() as conn:
        if engine.dialect.name in MYSQL_DIALECTS:
            # A session outlives its database being dropped by another one.
            present = await conn.scalar(text(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()"
            ))
            if not present:
                return f"database {engine.url.database!r} does not exist"
        else:
            await conn.execute(text("SELECT 1"))
    return None if await at_head(engine) else "migrations are not at head"


def _sqlite_file_problem(database: str) -> str | None:
    if not database or database.startswith("file:"):
        return None  # a URI filename: SQLite's to interpret
    if not os.path.isfile(database):
        return f"database file {database} is missing"
    if not os.access(database, os.R_OK | os.W_OK):
        return f"database file {database} is not readable and writable"
    return None
