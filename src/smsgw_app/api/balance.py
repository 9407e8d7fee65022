"""/balance: the balance with its transactions, and top-ups."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import HeaderParameter, Parameter

from smsgw_app.api.body import JsonBody
from smsgw_app.api.query import integers_in_query
from smsgw_app.api.schemas import BalanceResponse, TopUpRequest, TopUpResponse, TransactionRow
from smsgw_core.pagination import MAX_POSITION, PageRequest
from smsgw_core.services.accounts import Accounts, TopUp

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", required=False,
              description="Retry-safe top-ups (1-100 characters): the same key and body "
              "return the first answer and credit once; another body is 409."),
]


class BalanceController(Controller):
    path = "/balance"
    tags = ["balance"]

    @get("/", operation_id="getBalance", guards=[integers_in_query],
         summary="Balance and transactions, newest first")
    async def show(
        self,
        accounts: Accounts,
        user_id: Annotated[int, Parameter(ge=1, le=MAX_POSITION)],
        limit: Annotated[int | None, Parameter(description="1-1000, default 100")] = None,
        cursor: str | None = None,
    ) -> BalanceResponse:
        view = await accounts.view(user_id, PageRequest.parse(limit, cursor))
        rows = [
            TransactionRow(t.transaction_id, t.amount, t.type.value, t.description,
                           t.created_at.isoformat())
            for t in view.transactions.items
        ]
        return BalanceResponse(view.user_id, view.balance, rows, view.transactions.next_cursor)

    @post("/add", operation_id="addBalance", status_code=200, dto=JsonBody[TopUpRequest],
          return_dto=None, summary="Top up (creates the account when new)")
    async def add(
        self, data: TopUpRequest, accounts: Accounts, idempotency_key: IdempotencyKey = None
    ) -> TopUpResponse:
        balance = await accounts.top_up(
            TopUp(data.user_id, data.balance, data.description, idempotency_key)
        )
        return TopUpResponse(data.user_id, balance)
