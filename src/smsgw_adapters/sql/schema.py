"""The tables as they stand after every migration, for building queries.

The migrations in ``migrations/versions`` are the DDL that creates them; a
contract test compares the two so they cannot drift apart.
"""

from __future__ import annotations

import sqlalchemy as sa

from smsgw_adapters.sql.types import UtcDateTime, id_column_type, identifier

metadata = sa.MetaData()

user_balances = sa.Table(
    "user_balances",
    metadata,
    sa.Column("id", id_column_type(), primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    sa.Column("balance", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("last_updated", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("user_id", name="uq_user_balances_user_id"),
)

user_transactions = sa.Table(
    "user_transactions",
    metadata,
    sa.Column("id", id_column_type(), primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    sa.Column("amount", sa.BigInteger(), nullable=False),
    sa.Column("transaction_type", sa.String(50), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("transaction_id", identifier(100), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("transaction_id", name="uq_user_transactions_transaction_id"),
    sa.Index("idx_user_transactions_user_id", "user_id", "created_at"),
    sa.Index("idx_user_transactions_user_id_id", "user_id", "id"),
)

sms_status = sa.Table(
    "sms_status",
    metadata,
    sa.Column("id", id_column_type(), primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    sa.Column("status", sa.String(50), nullable=False),
    sa.Column("type", sa.String(50), nullable=False),
    sa.Column("recipient", identifier(20), nullable=False),
    sa.Column("provider", sa.String(50), nullable=False, server_default=""),
    sa.Column("sms_identifier", identifier(50), nullable=False),
    sa.Column("created_at", UtcDateTime(fractional=True), nullable=False),
    sa.Column("updated_at", UtcDateTime(fractional=True), nullable=False),
    sa.Column("message_id", identifier(100), nullable=True),  # the operator's, once DONE
    sa.UniqueConstraint(
        "sms_identifier", "recipient", name="uq_sms_status_identifier_recipient"
    ),
    sa.Index("idx_sms_status_provider_message", "provider", "message_id"),
    sa.Index("idx_sms_status_user_identifier", "user_id", "sms_identifier"),
    sa.Index("idx_sms_status_user_status_created", "user_id", "status", "created_at"),
    sa.Index("idx_sms_status_user_id_id", "user_id", "id"),
)

# The first receipt an operator sent for each of its message ids: the record of
# what it said and, while no recipient has the id yet, a receipt kept for it.
operator_receipts = sa.Table(
    "operator_receipts",
    metadata,
    sa.Column("operator", sa.String(50), primary_key=True),
    sa.Column("message_id", identifier(100), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error_code", sa.String(32), nullable=False, server_default=""),
    sa.Column("done_at", UtcDateTime(fractional=True), nullable=True),
    sa.Column("received_at", UtcDateTime(fractional=True), nullable=False),
    # No recipient found yet: the orphan sweep reads these only.
    sa.Column("kept", sa.Boolean(create_constraint=False), nullable=False,
              server_default=sa.true()),
    sa.Index("idx_operator_receipts_kept", "kept", "received_at"),
)

outbox_events = sa.Table(
    "outbox_events",
    metadata,
    sa.Column("id", id_column_type(), primary_key=True, autoincrement=True),
    sa.Column("aggregate_type", sa.String(50), nullable=False),
    sa.Column("aggregate_id", identifier(50), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_run_at", UtcDateTime(fractional=True), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(fractional=True), nullable=False),
    # Whose, and how many recipients: the relay's fair order across customers.
    sa.Column("user_id", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("recipients", sa.Integer(), nullable=False, server_default="1"),
    sa.UniqueConstraint("aggregate_id", "event_type", name="uq_outbox_aggregate_event"),
    sa.Index("idx_outbox_pending", "status", "priority", "next_run_at", "created_at"),
    sa.Index("idx_outbox_status_updated", "status", "updated_at"),
    sa.Index("idx_outbox_fair", "status", "priority", "user_id", "id"),
)
# The claim order, priority DESC then id, read straight off the index.
sa.Index(
    "idx_outbox_claim",
    outbox_events.c.status,
    outbox_events.c.priority.desc(),
    outbox_events.c.id,
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("idem_key", identifier(100), primary_key=True),
    sa.Column("request_hash", sa.CHAR(64), nullable=False),
    sa.Column("response", sa.JSON(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(255), nullable=False, server_default=""),
    sa.Column("max_recipients_per_s", sa.Integer(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.CHAR(16), primary_key=True),
    sa.Column("customer_id", sa.BigInteger(), nullable=True),
    sa.Column("name", sa.String(100), nullable=False, server_default=""),
    sa.Column("secret_hash", sa.CHAR(64), nullable=False),
    sa.Column("created_at", UtcDateTime(fractional=True), nullable=False),
    sa.Column("last_used_at", UtcDateTime(fractional=True), nullable=True),
    sa.Column("revoked_at", UtcDateTime(fractional=True), nullable=True),
    sa.Index("idx_api_keys_customer", "customer_id", "created_at"),
)

# A capped operator's shared schedule (SMSGW_OPERATORS ...?tps=N): when its next
# send may go, in seconds since the epoch by the database's clock.
operator_capacity = sa.Table(
    "operator_capacity",
    metadata,
    sa.Column("operator", sa.String(50), primary_key=True),
    sa.Column("next_free_s", sa.Float(precision=53), nullable=False),
)

# Status webhooks (migration 0009): each customer's endpoint, the events owed to
# it (an outbox written with the status moves), and every attempt at one.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", sa.String(255), nullable=False),  # comma-separated event types
    sa.Column("secret", sa.String(255), nullable=False),  # sealed (SecretBox)
    sa.Column("previous_secret", sa.String(255), nullable=False, server_default=""),
    sa.Column("previous_until", UtcDateTime(fractional=True), nullable=True),
    sa.Column("disabled_at", UtcDateTime(fractional=True), nullable=True),
    sa.Column("disabled_reason", sa.String(255), nullable=False, server_default=""),
    sa.Column("created_at", UtcDateTime(fractional=True), nullable=False),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", id_column_type(), primary_key=True, autoincrement=True),
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
    sa.UniqueConstraint("event_id", name="uq_webhook_events_event_id"),
    # Customers with due events, each one's oldest due first (loose index scan for MIN).
    sa.Index("idx_webhook_events_due", "state", "user_id", "next_at"),
    sa.Index("idx_webhook_events_list", "user_id", "state", "id"),
    sa.Index("idx_webhook_events_age", "state", "created_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", id_column_type(), primary_key=True, autoincrement=True),
    sa.Column("event", sa.BigInteger(), nullable=False),  # webhook_events.id
    sa.Column("at", UtcDateTime(fractional=True), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("error", sa.String(255), nullable=False, server_default=""),
    sa.Column("answer", sa.String(255), nullable=False, server_default=""),
    sa.Column("seconds", sa.Float(precision=53), nullable=False, server_default="0"),
    sa.Index("idx_webhook_attempts_event", "event", "id"),
)
