"""/v1/balance: the key's customer's balance and ledger, newest first."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get

from smsgw_app.api.document import AUTH_ERRORS, SECURITY, errors
from smsgw_app.api.query import Cursor, cursor_text, integers_in_query, page_size
from smsgw_app.api.v1.auth import AnyRequest, customer_key, customer_of
from smsgw_app.api.v1.schemas import BalancePage, LedgerRow
from smsgw_core.errors import UnknownAccount
from smsgw_core.ledger import Transaction
from smsgw_core.pagination import DEFAULT_LIMIT, PageRequest
from smsgw_core.services.accounts import Accounts


class BalanceV1Controller(Controller):
    path = "/v1/balance"
    tags = ["v1"]
    guards = [customer_key]
    security = SECURITY

    @get("/", operation_id="v1GetBalance", guards=[integers_in_query],
         responses=errors(400, *AUTH_ERRORS, 503), summary="Balance and transactions, newest first")
    async def show(
        self, request: AnyRequest, accounts: Accounts,
        limit: Annotated[int, page_size()] = DEFAULT_LIMIT, cursor: Cursor = None,
    ) -> BalancePage:
        page = PageRequest.parse(limit, cursor_text(cursor))
        try:
            view = await accounts.view(customer_of(request), page)
        except UnknownAccount:  # a customer never topped up has nothing yet
            return BalancePage(0, [], None)
        return BalancePage(view.balance, [_row(t) for t in view.transactions.items],
                           view.transactions.next_cursor)


def _row(t: Transaction) -> LedgerRow:
    return LedgerRow(t.transaction_id, t.amount, t.type.value, t.description,
                     t.created_at.isoformat())
