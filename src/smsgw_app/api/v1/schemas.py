"""/v1's wire schemas: our own shapes (the seed routes keep the Go service's)."""

from __future__ import annotations

from typing import Literal

import msgspec

from smsgw_app.api.schemas import Kind, Recipients, Text

LedgerKind = Literal["topup", "charge", "refund"]
# done: an operator took it; delivered, undelivered, expired: what its receipt said
# (final, as failed is). README "Statuses".
Status = Literal["pending", "sending", "done", "failed", "delivered", "undelivered",
                 "expired"]


class MessageRequest(msgspec.Struct):
    text: Text
    recipients: Recipients
    type: Kind = "normal"


class MessageAccepted(msgspec.Struct):
    id: str
    status: Literal["processing"]
    segments: int
    cost: int
    recipients: int


class RecipientState(msgspec.Struct):
    recipient: str
    status: Status
    provider: str
    updated_at: str
    error_code: str  # the operator's, from an undelivered or expired receipt ("" when none)
    delivered_at: str | None  # when the receipt says it was settled (null before one)


class MessageView(msgspec.Struct):
    id: str
    type: Kind
    created_at: str
    recipients: list[RecipientState]


class MessageRow(msgspec.Struct):
    """One recipient of one message: what a page of /v1/messages lists."""

    id: str
    recipient: str
    type: Kind
    status: Status
    provider: str
    created_at: str
    updated_at: str
    error_code: str
    delivered_at: str | None


class MessagesPage(msgspec.Struct):
    items: list[MessageRow]
    next_cursor: str | None


class LedgerRow(msgspec.Struct):
    transaction_id: str
    amount: int
    type: LedgerKind
    description: str
    created_at: str


class BalancePage(msgspec.Struct):
    balance: int
    transactions: list[LedgerRow]
    next_cursor: str | None
