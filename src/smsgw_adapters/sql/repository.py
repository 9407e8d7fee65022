"""What every SQL repository shares: the connection of its unit of work."""

from __future__ import annotations

from typing import Protocol

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
