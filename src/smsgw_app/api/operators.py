"""/operators/{name}/receipts: where an operator reports what became of its messages.

Not a customer's route: an operator calls it, with the token its entry of
SMSGW_OPERATORS names (`?receipt_token=…`), and the OpenAPI document tags it
apart ("operators", its own security scheme). A batch is taken whole or not
at all: the 200 comes after it is committed, so an operator that got no 200
sends the batch again, and what was applied is counted a duplicate then.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Parameter

from smsgw_app.api.body import JsonBody
from smsgw_app.api.document import OPERATOR_SECURITY, errors
from smsgw_core.errors import Unauthenticated
from smsgw_core.keys import bearer_token_matches
from smsgw_core.receipts import OperatorMessage, Receipt, Reported
from smsgw_core.services.receipts import ReceiptIntake

RECEIPT_TOKENS = "receipt_tokens"  # app.state: operator name -> its receipt token
MAX_BATCH = 10_000  # receipts per POST: thousands a second in a few requests
MAX_MESSAGE_ID = 100  # characters: operator_receipts.message_id, SMPP's 65 with room
MAX_ERROR_CODE = 32

OperatorName = Annotated[str, Parameter(
    description="The operator's name in SMSGW_OPERATORS", max_length=50)]


class ReceiptReport(msgspec.Struct, forbid_unknown_fields=False):
    """One receipt: what became of the message the operator answered with `message_id`."""

    message_id: Annotated[str, msgspec.Meta(
        min_length=1, max_length=MAX_MESSAGE_ID,
        description="The id the operator answered the send with")]
    status: Literal["delivered", "undelivered", "expired"]
    error_code: Annotated[str, msgspec.Meta(
        max_length=MAX_ERROR_CODE, description="The operator's own error code, if any")] = ""
    done_at: Annotated[datetime, msgspec.Meta(
        tz=True, description="When it happened, RFC 3339 with an offset; default: "
        "when the gateway got the receipt")] | None = None


class ReceiptsTaken(msgspec.Struct):
    applied: int  # moved a recipient to its final status
    kept: int  # no recipient has the id yet: kept for the answer to come (orphan time)
    duplicates: int  # received before, or the recipient's final status was in: no change


async def operator_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler,
                         ) -> None:
    """The Bearer token of the operator the path names: another's, or none, is 401."""
    tokens: Mapping[str, str] = connection.app.state[RECEIPT_TOKENS]
    name = connection.path_params.get("name", "")
    token = tokens.get(name, "")
    if not token or not bearer_token_matches(connection.headers.get("authorization"), token):
        raise Unauthenticated(
            f"receipts for operator {name[:50]!r}: no or wrong receipt token",
            "a valid receipt token is required: Authorization: Bearer <the operator's "
            "receipt_token>")


class ReceiptBody(JsonBody[ReceiptReport]):
    """A JSON array of receipts (1 to MAX_BATCH), decoded as strictly as any body."""

    many = True
    max_items = MAX_BATCH


class OperatorsController(Controller):
    path = "/operators"
    tags = ["operators"]
    guards = [operator_token]
    security = OPERATOR_SECURITY

    @post("/{name:str}/receipts", operation_id="operatorReceipts", status_code=200,
          dto=ReceiptBody, return_dto=None, responses=errors(400, 401, 413, 415, 503),
          summary="An operator reports what became of messages it took (not for customers)")
    async def receipts(
        self, name: OperatorName, data: list[ReceiptReport], receipts: ReceiptIntake,
    ) -> ReceiptsTaken:
        now = receipts.clock.now()
        taken = await receipts.take([
            Receipt(OperatorMessage(name, r.message_id), Reported(r.status), r.error_code,
                    r.done_at, now)
            for r in data
        ])
        return ReceiptsTaken(taken.applied, taken.kept, taken.duplicates)
