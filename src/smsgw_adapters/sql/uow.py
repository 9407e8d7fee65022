"""The unit of work: one database transaction shared by the repositories."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgw_adapters.sql.errors import storage_error
from smsgw_adapters.sql.idempotency import SqlIdempotency
from smsgw_adapters.sql.ledger import SqlLedger
from smsgw_adapters.sql.messages import SqlMessages
from smsgw_adapters.sql.outbox import SqlOutbox
from smsgw_adapters.sql.receipts import SqlReceipts
from smsgw_adapters.sql.tenancy import SqlCustomers, SqlKeys
from smsgw_adapters.sql.webhooks import SqlWebhooks
from smsgw_core.errors import StorageUnavailable


class SqlUnitOfWork:
    """``async with`` begins a transaction; leaving it without ``commit()`` rolls back.

    After ``commit()`` the unit of work may go on: the next statement begins a
    new transaction, as with the in-memory unit of work.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self.ledger = SqlLedger(self)
        self.messages = SqlMessages(self)
        self.outbox = SqlOutbox(self)
        self.idempotency = SqlIdempotency(self)
        self.customers = SqlCustomers(self)
        self.keys = SqlKeys(self)
        self.receipts = SqlReceipts(self)
        self.webhooks = SqlWebhooks(self)

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._connection

    async def __aenter__(self) -> Self:
        if self._connection is not None:
            raise RuntimeError("unit of work entered twice")
        try:
            connection = await self._engine.connect()
        except Exception as exc:
            _raise_translated(exc)
            # Nothing of the caller's ran yet: whatever stops us getting a connection
            # (a socket cut mid-handshake surfaces from the driver as a bare
            # RuntimeError) means the database cannot be had now, not a bug.
            raise StorageUnavailable(f"cannot connect: {type(exc).__name__}: {exc}"[:200]) \
                from exc
        try:
            await connection.begin()
        except BaseException as exc:
            await connection.close()
            _raise_translated(exc)
            raise
        self._connection = connection
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if connection.in_transaction():
                await connection.rollback()
        except Exception as failure:
            if exc is None:
                _raise_translated(failure)
                raise
            # Else the body's error is the one to report; a connection that
            # cannot roll back is discarded by close().
        finally:
            await connection.close()
        # The one place every repository's statements, and commit(), pass
        # through on their way out: the core sees its own errors for a conflict
        # or an unreachable database (it re-runs the one, answers 503 for the
        # other), whichever repository met it.
        if exc is not None:
            _raise_translated(exc)

    async def commit(self) -> None:
        await self.connection.commit()

    async def rollback(self) -> None:
        await self.connection.rollback()


def _raise_translated(exc: BaseException) -> None:
    """Raise the core's error for `exc` if it has one; else return (the caller re-raises)."""
    translated = storage_error(exc)
    if translated is not None:
        raise translated from exc


def sql_uow_factory(engine: AsyncEngine) -> Callable[[], SqlUnitOfWork]:
    """What the use cases take as their ``UnitOfWorkFactory``."""
    return lambda: SqlUnitOfWork(engine)
