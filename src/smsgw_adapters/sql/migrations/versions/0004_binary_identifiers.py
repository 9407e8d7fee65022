"""Identifiers compare byte for byte on MySQL/MariaDB, as they do on SQLite.

The tables took the database's default collation (utf8mb4_general_ci), which
ignores case and trailing spaces: an Idempotency-Key `case-1` after `Case-1`
was answered as a replay and never sent, and a top-up with the lower-cased key
credited nothing (its transaction id "already applied"). Every column that is
looked up or kept unique by equality gets a binary NO PAD collation, with its
length, nullability and indexes unchanged:
idempotency_keys.idem_key, user_transactions.transaction_id,
sms_status.sms_identifier and recipient, outbox_events.aggregate_id.

utf8mb4_bin is not enough: it is a PAD SPACE collation, so 'k' = 'k ' still.
MariaDB has utf8mb4_nopad_bin; MySQL 8.0.17+ utf8mb4_0900_bin; an older MySQL
only utf8mb4_bin (case, at least). SQLite compares with BINARY (memcmp) unless
told otherwise, so nothing changes there.

The downgrade restores each table's default collation; it fails if keys that
differ only in case or trailing spaces were stored meanwhile (they would be
duplicates again).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# table -> (column, length): all NOT NULL VARCHARs
IDENTIFIERS: dict[str, list[tuple[str, int]]] = {
    "idempotency_keys": [("idem_key", 100)],
    "user_transactions": [("transaction_id", 100)],
    "sms_status": [("sms_identifier", 50), ("recipient", 20)],
    "outbox_events": [("aggregate_id", 50)],
}


def _is_mysql() -> bool:
    return op.get_context().dialect.name in ("mysql", "mariadb")


def bytewise_collation() -> str:
    dialect = op.get_bind().dialect
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    if (dialect.server_version_info or ()) >= (8, 0, 17):
        return "utf8mb4_0900_bin"
    return "utf8mb4_bin"


def _collate(collation_of: dict[str, str]) -> None:
    for table, columns in IDENTIFIERS.items():
        collation = collation_of[table]
        # One ALTER per table: the table is rebuilt once, its indexes with it.
        changes = ", ".join(
            f"MODIFY {column} VARCHAR({length}) CHARACTER SET utf8mb4 COLLATE {collation} "
            "NOT NULL"
            for column, length in columns
        )
        op.execute(text(f"ALTER TABLE {table} {changes}"))


def upgrade() -> None:
    if not _is_mysql():
        return
    collation = bytewise_collation()
    _collate(dict.fromkeys(IDENTIFIERS, collation))


def downgrade() -> None:
    if not _is_mysql():
        return
    defaults = op.get_bind().execute(text(
        "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = DATABASE()"
    ))
    _collate({table: collation for table, collation in defaults})
