"""Our extensions to the original schema.

- user_transactions.transaction_id VARCHAR(100): refund ids
  ("refund:<uuid>:<recipient>") run to about 64 characters.
- idempotency_keys: one stored response per (customer, Idempotency-Key).
- (user_id, id) indexes: history pages are keyset-paginated newest first by id.
- outbox_events.next_run_at / updated_at with microseconds: publish backoff
  starts at half a second, which whole-second DATETIME would round away.
- (status, priority DESC, id) on outbox_events: the relay claims in exactly that
  order, so it reads and locks only the rows it takes; with a sort, MySQL
  would lock every due row and concurrent relays would find nothing to claim.
  (Before MariaDB 10.8 DESC is ignored: claims stay correct, relays serialize.)
- (status, updated_at) on outbox_events: redrive looks up published events by age.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _is_mysql() -> bool:
    return op.get_context().dialect.name in ("mysql", "mariadb")


def _datetime(fsp: int | None) -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=fsp), "mysql", "mariadb")


def _on_update(fsp: int | None) -> sa.TextClause:
    if not _is_mysql():
        return sa.text("CURRENT_TIMESTAMP")
    # MySQL insists the default's precision matches the column's.
    now = f"CURRENT_TIMESTAMP({fsp})" if fsp else "CURRENT_TIMESTAMP"
    return sa.text(f"{now} ON UPDATE {now}")


def _outbox_timestamps(fsp: int | None) -> None:
    with op.batch_alter_table("outbox_events") as batch:
        batch.alter_column(
            "next_run_at", existing_type=sa.DateTime(), type_=_datetime(fsp),
            existing_nullable=True,
        )
        batch.alter_column(
            "updated_at", existing_type=sa.DateTime(), type_=_datetime(fsp),
            existing_nullable=False, server_default=_on_update(fsp),
        )


def upgrade() -> None:
    with op.batch_alter_table("user_transactions") as batch:
        batch.alter_column(
            "transaction_id", existing_type=sa.String(50), type_=sa.String(100),
            existing_nullable=False,
        )
    op.create_index(
        "idx_user_transactions_user_id_id", "user_transactions", ["user_id", "id"]
    )
    op.create_index("idx_sms_status_user_id_id", "sms_status", ["user_id", "id"])
    _outbox_timestamps(6)
    op.create_index(
        "idx_outbox_claim", "outbox_events", ["status", sa.text("priority DESC"), "id"]
    )
    op.create_index("idx_outbox_status_updated", "outbox_events", ["status", "updated_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("idem_key", sa.String(100), nullable=False),
        sa.Column("request_hash", sa.CHAR(64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(), nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.PrimaryKeyConstraint("user_id", "idem_key"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("idx_outbox_status_updated", table_name="outbox_events")
    op.drop_index("idx_outbox_claim", table_name="outbox_events")
    _outbox_timestamps(None)
    op.drop_index("idx_sms_status_user_id_id", table_name="sms_status")
    op.drop_index("idx_user_transactions_user_id_id", table_name="user_transactions")
    # Fails on MySQL once a longer id (a refund) is stored: narrowing would truncate it.
    with op.batch_alter_table("user_transactions") as batch:
        batch.alter_column(
            "transaction_id", existing_type=sa.String(100), type_=sa.String(50),
            existing_nullable=False,
        )
