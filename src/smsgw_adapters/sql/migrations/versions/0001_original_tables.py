"""The original service's four tables, as it created them.

Applied databases depend on this file: never edit it, add a revision instead.
Constraint names are given explicitly (the original left MySQL to name the
single-column unique keys) so later batch migrations on SQLite can find them.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

MYSQL_TABLE: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _id() -> sa.Column[int]:
    # SQLite only auto-assigns ids to a column declared exactly INTEGER PRIMARY KEY.
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    return sa.Column("id", id_type, primary_key=True, autoincrement=True)


def _created() -> sa.TextClause:
    return sa.text("CURRENT_TIMESTAMP")


def _updated() -> sa.TextClause:
    if op.get_context().dialect.name in ("mysql", "mariadb"):
        return sa.text("CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "user_balances",
        _id(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_updated", sa.DateTime(), nullable=False, server_default=_updated()),
        sa.UniqueConstraint("user_id", name="uq_user_balances_user_id"),
        **MYSQL_TABLE,
    )
    op.create_table(
        "user_transactions",
        _id(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("transaction_type", sa.String(50), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("transaction_id", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False, server_default=_created()),
        sa.UniqueConstraint("transaction_id", name="uq_user_transactions_transaction_id"),
        **MYSQL_TABLE,
    )
    op.create_index(
        "idx_user_transactions_user_id", "user_transactions", ["user_id", "created_at"]
    )
    op.create_table(
        "sms_status",
        _id(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(50), nullable=False),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("recipient", sa.String(20), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False, server_default=""),
        sa.Column("sms_identifier", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False, server_default=_created()),
        sa.Column("updated_at", sa.DateTime(), nullable=False, server_default=_updated()),
        sa.UniqueConstraint(
            "sms_identifier", "recipient", name="uq_sms_status_identifier_recipient"
        ),
        **MYSQL_TABLE,
    )
    op.create_index(
        "idx_sms_status_user_identifier", "sms_status", ["user_id", "sms_identifier"]
    )
    op.create_index(
        "idx_sms_status_user_status_created", "sms_status", ["user_id", "status", "created_at"]
    )
    op.create_table(
        "outbox_events",
        _id(),
        sa.Column("aggregate_type", sa.String(50), nullable=False),
        sa.Column("aggregate_id", sa.String(50), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_run_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False, server_default=_created()),
        sa.Column("updated_at", sa.DateTime(), nullable=False, server_default=_updated()),
        sa.UniqueConstraint("aggregate_id", "event_type", name="uq_outbox_aggregate_event"),
        **MYSQL_TABLE,
    )
    op.create_index(
        "idx_outbox_pending",
        "outbox_events",
        ["status", "priority", "next_run_at", "created_at"],
    )


def downgrade() -> None:
    for table in ("outbox_events", "sms_status", "user_transactions", "user_balances"):
        op.drop_table(table)
