"""Whose each outbox event is, and how many recipients it carries: the relay's
fair order across customers reads them.

- outbox_events.user_id, outbox_events.recipients, filled for the events already
  there from their payload;
- idx_outbox_fair (status, priority, user_id, id): the customers with waiting
  events of a lane, and each one's oldest, are index reads.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_events") as table:
        table.add_column(sa.Column("user_id", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        table.add_column(sa.Column("recipients", sa.Integer(), nullable=False,
                                   server_default="1"))
    # The events already there, from their payload; a poison one (no such fields)
    # stays customer 0 with one recipient.
    if op.get_bind().dialect.name == "sqlite":
        user, count, at_least_one = ("json_extract(payload, '$.user_id')",
                                     "json_array_length(payload, '$.recipients')", "MAX")
        valid = " AND json_valid(payload)"
    else:
        user, count, at_least_one = ("JSON_VALUE(payload, '$.user_id')",
                                     "JSON_LENGTH(payload, '$.recipients')", "GREATEST")
        valid = ""
    op.execute(f"UPDATE outbox_events SET user_id = COALESCE({user}, 0), "
               f"recipients = {at_least_one}(COALESCE({count}, 1), 1) "
               f"WHERE status = 'pending'{valid}")
    op.create_index("idx_outbox_fair", "outbox_events",
                    ["status", "priority", "user_id", "id"])


def downgrade() -> None:
    op.drop_index("idx_outbox_fair", table_name="outbox_events")
    with op.batch_alter_table("outbox_events") as table:
        table.drop_column("recipients")
        table.drop_column("user_id")
