"""Delivery receipts: the operator's message id kept with each recipient it took,
and the receipts operators sent.

- sms_status.message_id (NULL until DONE) and idx_sms_status_provider_message
  (provider, message_id): a receipt names its recipient by these two;
- operator_receipts: the first receipt for each (operator, message id), the
  record of what the operator said (status, its error code, when) and, while no
  recipient has the id yet, the receipt kept for the answer to come (`kept`
  until a recipient with the id is found: the orphan sweep reads only those,
  along idx_operator_receipts_kept).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from smsgw_adapters.sql.types import UtcDateTime, identifier

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("sms_status") as table:
        table.add_column(sa.Column("message_id", identifier(100), nullable=True))
    op.create_index("idx_sms_status_provider_message", "sms_status",
                    ["provider", "message_id"])
    op.create_table(
        "operator_receipts",
        sa.Column("operator", sa.String(50), nullable=False),
        sa.Column("message_id", identifier(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_code", sa.String(32), nullable=False, server_default=""),
        sa.Column("done_at", UtcDateTime(fractional=True), nullable=True),
        sa.Column("received_at", UtcDateTime(fractional=True), nullable=False),
        sa.Column("kept", sa.Boolean(create_constraint=False), nullable=False,
                  server_default=sa.true()),
        sa.PrimaryKeyConstraint("operator", "message_id"),
    )
    op.create_index("idx_operator_receipts_kept", "operator_receipts", ["kept", "received_at"])


def downgrade() -> None:
    op.drop_index("idx_operator_receipts_kept", table_name="operator_receipts")
    op.drop_table("operator_receipts")
    op.drop_index("idx_sms_status_provider_message", table_name="sms_status")
    with op.batch_alter_table("sms_status") as table:
        table.drop_column("message_id")
