"""Customers and their API keys.

- customers: a name and an optional send limit (recipients per second) per
  customer; the id is the user_id of the balance and the ledger.
- api_keys: a key's id (16 hex characters, in clear: the key names it), its
  customer (NULL for an admin key), a name, the SHA-256 of its secret (never
  the secret), and when it was created, last used and revoked. A key id and a
  hash are lowercase hex, so the default collation compares them exactly.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def _datetime(fsp: int | None) -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=fsp), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("name", sa.String(255), nullable=False, server_default=""),
        sa.Column("max_recipients_per_s", sa.Integer(), nullable=True),
        sa.Column("created_at", _datetime(None), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.CHAR(16), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(100), nullable=False, server_default=""),
        sa.Column("secret_hash", sa.CHAR(64), nullable=False),
        sa.Column("created_at", _datetime(6), nullable=False),
        sa.Column("last_used_at", _datetime(6), nullable=True),
        sa.Column("revoked_at", _datetime(6), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_index("idx_api_keys_customer", "api_keys", ["customer_id", "created_at"])


def downgrade() -> None:
    op.drop_index("idx_api_keys_customer", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("customers")
