"""The capped operators' shared schedule (SMSGW_OPERATORS NAME=URL?tps=N): one row
per operator, the time its next send may go, in seconds since the epoch by the
database's clock.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "operator_capacity",
        sa.Column("operator", sa.String(50), nullable=False),
        sa.Column("next_free_s", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("operator"),
    )


def downgrade() -> None:
    op.drop_table("operator_capacity")
