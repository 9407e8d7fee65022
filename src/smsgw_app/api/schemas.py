"""Wire schemas: one msgspec Struct per request and response, apart from domain types.

Limits here are only what keeps decoding cheap; the domain rules (phone
numbers, segment count, positive amounts) are checked by the core, which
names the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from smsgw_core.ledger import MAX_BALANCE

PositiveId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1, description="positive integer")]


class SendSmsRequest(msgspec.Struct):
    customer_id: PositiveId
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    recipients: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=32)]],
        msgspec.Meta(min_length=1, max_length=1000, description="phone numbers, 1-1000"),
    ]
    type: Literal["normal", "express"] = "normal"


class SendSmsResponse(msgspec.Struct):
    sms_identifier: str
    status: Literal["processing"]
    segments: int
    cost: int
    recipients: int


class HistoryRow(msgspec.Struct):
    user_id: int
    sms_identifier: str
    recipient: str
    type: str
    status: str
    provider: str
    created_at: str
    updated_at: str


class HistoryResponse(msgspec.Struct):
    items: list[HistoryRow]
    next_cursor: str | None


class TopUpRequest(msgspec.Struct):
    user_id: PositiveId
    balance: Annotated[int, msgspec.Meta(
        ge=1, le=MAX_BALANCE, description=f"amount to add, 1-{MAX_BALANCE}")]
    description: Annotated[str, msgspec.Meta(max_length=255)] = ""


class TopUpResponse(msgspec.Struct):
    user_id: int
    balance: int


class TransactionRow(msgspec.Struct):
    transaction_id: str
    amount: int
    type: str
    description: str
    created_at: str


class BalanceResponse(msgspec.Struct):
    user_id: int
    balance: int
    transactions: list[TransactionRow]
    next_cursor: str | None


class ErrorResponse(msgspec.Struct):
    message: str


class HealthResponse(msgspec.Struct):
    status: str
    checks: dict[str, str] = {}
