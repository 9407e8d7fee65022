"""What the in-memory database holds: one copy per unit of work, swapped in on commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from smsgw_core.customers import Customer
from smsgw_core.keys import ApiKey
from smsgw_core.ledger import Transaction
from smsgw_core.messages import RecipientMessage
from smsgw_core.outbox import OutboxEvent
from smsgw_core.ports import StoredResponse
from smsgw_core.receipts import OperatorMessage, Receipt
from smsgw_core.webhooks import Attempt, Endpoint, WebhookEvent


@dataclass
class OutboxRow:
    event: OutboxEvent
    status: str = "pending"
    run_at: datetime | None = None
    last_error: str | None = None
    updated_at: datetime | None = None


@dataclass
class InMemoryState:
    balances: dict[int, int] = field(default_factory=dict)
    transactions: list[tuple[int, Transaction]] = field(default_factory=list)
    messages: list[tuple[int, RecipientMessage]] = field(default_factory=list)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    idempotency: dict[tuple[int, str], StoredResponse] = field(default_factory=dict)
    customers: dict[int, Customer] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    receipts: dict[OperatorMessage, Receipt] = field(default_factory=dict)  # the first of each
    matched_receipts: set[OperatorMessage] = field(default_factory=set)  # no longer kept
    endpoints: dict[int, Endpoint] = field(default_factory=dict)
    webhook_events: dict[int, WebhookEvent] = field(default_factory=dict)  # by position
    webhook_attempts: dict[int, list[Attempt]] = field(default_factory=dict)  # by position
    next_id: int = 1

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1
