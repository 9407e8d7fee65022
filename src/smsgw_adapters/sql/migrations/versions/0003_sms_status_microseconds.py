"""sms_status.created_at / updated_at with microseconds.

Accept→delivered latency is the gateway's promise for express messages (well
under a second); whole-second DATETIME rounds it away, so neither a customer's
history nor the benchmark can tell 50 ms from 900 ms.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _is_mysql() -> bool:
    return op.get_context().dialect.name in ("mysql", "mariadb")


def _datetime(fsp: int | None) -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=fsp), "mysql", "mariadb")


def _now(fsp: int | None, on_update: bool) -> sa.TextClause:
    if not _is_mysql():
        return sa.text("CURRENT_TIMESTAMP")
    # MySQL insists the default's precision matches the column's.
    now = f"CURRENT_TIMESTAMP({fsp})" if fsp else "CURRENT_TIMESTAMP"
    return sa.text(f"{now} ON UPDATE {now}" if on_update else now)


def _timestamps(fsp: int | None) -> None:
    with op.batch_alter_table("sms_status") as batch:
        batch.alter_column(
            "created_at", existing_type=sa.DateTime(), type_=_datetime(fsp),
            existing_nullable=False, server_default=_now(fsp, on_update=False),
        )
        batch.alter_column(
            "updated_at", existing_type=sa.DateTime(), type_=_datetime(fsp),
            existing_nullable=False, server_default=_now(fsp, on_update=True),
        )


def upgrade() -> None:
    _timestamps(6)


def downgrade() -> None:
    _timestamps(None)
