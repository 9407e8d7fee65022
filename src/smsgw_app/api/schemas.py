"""Wire schemas: one msgspec Struct per request and response, apart from domain types.

The seed routes answer in the Go service's shapes (see docs/compatibility.md):
its keys, its values, with extra keys only inside objects. Every bound the
core enforces is stated here too, so that the OpenAPI document calls valid
exactly what the server accepts; the core still checks them, for the
callers that embed it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from smsgw_core.ledger import MAX_BALANCE
from smsgw_core.messages import MAX_RECIPIENTS, MAX_TEXT_LENGTH, PHONE_NUMBER
from smsgw_core.pagination import MAX_POSITION
from smsgw_core.services.accounts import MAX_DESCRIPTION


def integer(low: int, high: int, description: str) -> msgspec.Meta:
    """An integer from `low` to `high`, its bounds written as integers.

    Litestar writes `ge`/`le` into the document as floats, and float(2**63 - 1)
    is 2**63: the document would call valid a number the server refuses. The
    bounds given again as `schema_extra` replace them, exact.
    """
    return msgspec.Meta(ge=low, le=high, extra_json_schema={
        "description": description, "extra": {"minimum": low, "maximum": high},
    })


# `$` in Python's re (and so in the validators of fuzzers and clients written in
# Python) also matches before a final newline; the lookahead refuses that one.
PHONE_PATTERN = f"^{PHONE_NUMBER}$(?!\\n)"

PositiveId = Annotated[int, integer(1, MAX_POSITION, f"positive integer, at most {MAX_POSITION}")]
# The pattern is stated in the document only: the core checks every number and
# names all the wrong ones in one answer, where msgspec would stop at the first.
# (Litestar writes no schema_extra for a list's items, so the list states it.)
PHONE_NUMBER_SCHEMA = {
    "type": "string", "pattern": PHONE_PATTERN, "maxLength": 16,
    "description": "7-15 digits with an optional leading +, nothing around them",
}


# A message's fields, on the seed route and on /v1 alike.
Text = Annotated[str, msgspec.Meta(
    min_length=1, max_length=MAX_TEXT_LENGTH,
    description=f"1-{MAX_TEXT_LENGTH} characters; charged per segment",
)]
Recipients = Annotated[list[str], msgspec.Meta(
    min_length=1, max_length=MAX_RECIPIENTS, extra_json_schema={
        "description": f"1-{MAX_RECIPIENTS} phone numbers; repeated numbers are sent once",
        "extra": {"items": PHONE_NUMBER_SCHEMA},
    },
)]
Kind = Literal["normal", "express"]


class SendSmsRequest(msgspec.Struct):
    customer_id: PositiveId
    text: Text
    recipients: Recipients
    type: Kind = "normal"


class SendSmsResponse(msgspec.Struct):
    sms_identifier: str
    status: Literal["processing"]
    segments: int
    cost: int
    recipients: int


# The Go service's words: its statuses in lowercase, its three kinds of ledger row.
GoStatus = Literal["pending", "sending", "done", "failed"]
GoTransactionType = Literal["deposit", "withdrawal", "Corrective"]


class HistoryRow(msgspec.Struct):
    user_id: int
    sms_identifier: str
    recipient: str
    type: str
    status: GoStatus
    provider: str
    created_at: str
    updated_at: str


class HistoryResponse(msgspec.Struct):
    history: list[HistoryRow]
    next_cursor: str | None


class TopUpRequest(msgspec.Struct):
    user_id: PositiveId
    balance: Annotated[int, integer(1, MAX_BALANCE, f"amount to add, 1-{MAX_BALANCE}")]
    description: Annotated[str, msgspec.Meta(
        max_length=MAX_DESCRIPTION, description=f"at most {MAX_DESCRIPTION} characters",
    )] = ""


# The Go service answers a top-up with the JSON string "done".
TopUpDone = Literal["done"]


class TransactionRow(msgspec.Struct, rename={
    "amount": "Amount", "transaction_type": "TransactionType", "description": "Description",
}):
    """A ledger row under the Go service's keys (its struct had no JSON tags)."""

    amount: int
    transaction_type: GoTransactionType
    description: str
    transaction_id: str


class BalanceResponse(msgspec.Struct):
    balance: int
    transactions: list[TransactionRow]
    next_cursor: str | None


class ErrorResponse(msgspec.Struct):
    message: str


class HealthResponse(msgspec.Struct):
    status: Literal["ok", "ready"]
    checks: dict[str, str] = {}


class NotReadyResponse(msgspec.Struct):
    """/readyz's 503: which checks fail, each with its reason."""

    message: str
    checks: dict[str, str]
