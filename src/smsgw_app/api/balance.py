"""/balance: the balance with its transactions, and top-ups, as the Go service answers them."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, MediaType, Response, get, post
from litestar.params import HeaderParameter

from smsgw_app.api.body import JsonBody
from smsgw_app.api.document import AUTH_ERRORS, errors
from smsgw_app.api.query import (
    SEED_PAGE,
    Cursor,
    UserId,
    cursor_text,
    integers_in_query,
    page_size,
)
from smsgw_app.api.schemas import (
    BalanceResponse,
    GoTransactionType,
    TopUpDone,
    TopUpRequest,
    TransactionRow,
)
from smsgw_app.api.v1.auth import AnyRequest, acting_for, seed_admin_key, seed_customer_key
from smsgw_core.errors import UnknownAccount
from smsgw_core.ledger import Transaction, TransactionType
from smsgw_core.pagination import PageRequest
from smsgw_core.services.accounts import Accounts, TopUp
from smsgw_core.services.send_sms import MAX_IDEMPOTENCY_KEY

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key", required=False, min_length=1, max_length=MAX_IDEMPOTENCY_KEY,
        description=f"Retry-safe top-ups (1-{MAX_IDEMPOTENCY_KEY} characters): the same key "
        "and body return the first answer and credit once; another body is 409.",
    ),
]

DONE = msgspec.json.encode("done")

GO_TYPE: dict[TransactionType, GoTransactionType] = {
    TransactionType.TOPUP: "deposit",
    TransactionType.CHARGE: "withdrawal",  # its amount is negative, as the Go service's
    TransactionType.REFUND: "Corrective",
}


class BalanceController(Controller):
    path = "/balance"
    tags = ["balance"]

    @get("/", operation_id="getBalance", guards=[seed_customer_key, integers_in_query],
         responses=errors(400, *AUTH_ERRORS, 503), summary="Balance and transactions, newest first")
    async def show(
        self,
        request: AnyRequest,
        accounts: Accounts,
        user_id: UserId,
        limit: Annotated[int, page_size()] = SEED_PAGE,
        cursor: Cursor = None,
    ) -> BalanceResponse:
        acting_for(request, user_id)
        page = PageRequest.parse(limit, cursor_text(cursor))
        try:
            view = await accounts.view(user_id, page)
        except UnknownAccount:
            # As the Go service: a customer never topped up has nothing, not no account.
            return BalanceResponse(0, [], None)
        rows = [_row(t) for t in view.transactions.items]
        return BalanceResponse(view.balance, rows, view.transactions.next_cursor)

    @post("/add", operation_id="addBalance", status_code=200, dto=JsonBody[TopUpRequest],
          return_dto=None, guards=[seed_admin_key],
          responses=errors(400, *AUTH_ERRORS, 409, 413, 415, 503),
          summary="Top up (creates the account when new); answers \"done\"")
    async def add(
        self, data: TopUpRequest, accounts: Accounts, idempotency_key: IdempotencyKey = None
    ) -> Response[TopUpDone]:
        await accounts.top_up(TopUp(data.user_id, data.balance, data.description, idempotency_key))
        # Encoded here: Litestar sends a str as it is, and the answer is the JSON string
        # "done". The annotation is what the document shows; the bytes are its encoding.
        return Response(DONE, media_type=MediaType.JSON)  # type: ignore[arg-type]


def _row(t: Transaction) -> TransactionRow:
    return TransactionRow(t.amount, GO_TYPE[t.type], t.description, t.transaction_id)
