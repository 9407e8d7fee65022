"""What every SQL repository shares: the connection of its unit of work, and how a
locking read keeps to its index."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


class ConnectionHolder(Protocol):
    @property
    def connection(self) -> AsyncConnection: ...


class SqlRepository:
    def __init__(self, holder: ConnectionHolder) -> None:
        self._holder = holder

    @property
    def _conn(self) -> AsyncConnection:
        return self._holder.connection

    @property
    def _dialect(self) -> str:
        return self._conn.dialect.name


Locking = TypeVar("Locking", bound=sa.Select[Any])


def force_index(index: str, table: sa.Table, select: Locking) -> Locking:
    """A locking read that MySQL/MariaDB must make along `index`: `FORCE INDEX`.

    A locking read locks every row it scans, matching or not, in the order it
    scans them. Along the index its WHERE names, it scans just its rows, in that
    index's order, whatever the statistics say; left to the optimizer, a table
    whose statistics are stale (just emptied, or just filled) is scanned whole
    in id order, and two such reads deadlock, or wait on every row another holds.

    Only MySQL and MariaDB render the hint. On SQLite the select is unchanged:
    it renders no FOR UPDATE either, having no row locks (one writer at a time).
    """
    hint = f"FORCE INDEX ({index})"
    return select.with_hint(table, hint, "mysql").with_hint(table, hint, "mariadb")


def force_index_update(index: str, update: sa.Update) -> sa.Update:
    """An UPDATE that MySQL/MariaDB must make along `index` (`FORCE INDEX`): it locks
    what it scans, as a locking read does (see `force_index`). Unchanged on SQLite."""
    hint = f"FORCE INDEX ({index})"
    return update.with_hint(hint, dialect_name="mysql").with_hint(hint, dialect_name="mariadb")
