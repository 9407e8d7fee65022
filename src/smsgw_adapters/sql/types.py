"""Column types shared by the schema and the repositories."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

MYSQL_DIALECTS = frozenset({"mysql", "mariadb"})


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC in the core, naive UTC in the database.

    The original schema's DATETIME columns carry no zone, and MySQL's TIMESTAMP
    would convert by the session time zone; storing naive UTC keeps both dialects
    and every server setting in agreement.
    """

    impl = sa.DateTime
    cache_ok = True

    def __init__(self, fractional: bool = False) -> None:
        super().__init__()
        self.fractional = fractional

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6 if self.fractional else None))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive value's zone is a guess; guessing wrong shifts leases and history.
            raise ValueError(f"naive datetime {value!r}: the core works in aware UTC")
        naive = value.astimezone(UTC).replace(tzinfo=None)
        if not self.fractional and dialect.name in MYSQL_DIALECTS:
            # MySQL rounds a fraction away (possibly into the next second) and
            # MariaDB truncates it: truncate here so both store the same value.
            naive = naive.replace(microsecond=0)
        return naive

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def id_column_type() -> sa.types.TypeEngine[int]:
    """BIGINT AUTO_INCREMENT on MySQL; INTEGER PRIMARY KEY (the rowid) on SQLite.

    SQLite only auto-assigns ids to a column declared exactly INTEGER PRIMARY KEY.
    """
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# What migration 0004 gives identifiers on MariaDB: binary, and NO PAD (utf8mb4_bin
# still finds 'k' = 'k '). SQLite's default BINARY collation already is both.
BYTEWISE_COLLATION = "utf8mb4_nopad_bin"


def identifier(length: int) -> sa.types.TypeEngine[str]:
    """A VARCHAR compared byte for byte: keys, transaction ids, sms ids, recipients."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, collation=BYTEWISE_COLLATION), "mysql", "mariadb"
    )
