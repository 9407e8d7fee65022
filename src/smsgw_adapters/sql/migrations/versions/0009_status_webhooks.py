"""Status webhooks: each customer's endpoint, the events owed to it, their attempts.

- webhook_endpoints: one per customer, its signing secrets sealed (never plain);
- webhook_events: the outbox of status events, written in the transaction of the
  status move; idx_webhook_events_due serves the fair claim (customers with due
  events, each one's oldest), idx_webhook_events_list the customer's event list,
  idx_webhook_events_age the age of the oldest pending event;
- webhook_attempts: every try, with the endpoint's status code and answer.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from smsgw_adapters.sql.types import UtcDateTime, id_column_type, identifier

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.String(255), nullable=False),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("previous_secret", sa.String(255), nullable=False, server_default=""),
        sa.Column("previous_until", UtcDateTime(fractional=True), nullable=True),
        sa.Column("disabled_at", UtcDateTime(fractional=True), nullable=True),
        sa.Column("disabled_reason", sa.String(255), nullable=False, server_default=""),
        sa.Column("created_at", UtcDateTime(fractional=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", id_column_type(), autoincrement=True, nullable=False),
        sa.Column("event_id", identifier(40), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_at", UtcDateTime(fractional=True), nullable=False),
        sa.Column("claimed_by", sa.String(32), nullable=True),
        sa.Column("created_at", UtcDateTime(fractional=True), nullable=False),
        sa.Column("finished_at", UtcDateTime(fractional=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", name="uq_webhook_events_event_id"),
    )
    op.create_index("idx_webhook_events_due", "webhook_events", ["state", "user_id", "next_at"])
    op.create_index("idx_webhook_events_list", "webhook_events", ["user_id", "state", "id"])
    op.create_index("idx_webhook_events_age", "webhook_events", ["state", "created_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", id_column_type(), autoincrement=True, nullable=False),
        sa.Column("event", sa.BigInteger(), nullable=False),
        sa.Column("at", UtcDateTime(fractional=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(255), nullable=False, server_default=""),
        sa.Column("answer", sa.String(255), nullable=False, server_default=""),
        sa.Column("seconds", sa.Float(precision=53), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("idx_webhook_attempts_event", "webhook_attempts", ["event", "id"])


def downgrade() -> None:
    op.drop_index("idx_webhook_attempts_event", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    for index in ("idx_webhook_events_age", "idx_webhook_events_list", "idx_webhook_events_due"):
        op.drop_index(index, table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("webhook_endpoints")
