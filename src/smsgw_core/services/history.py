"""Per-recipient delivery history of a customer, newest first."""

from __future__ import annotations

from dataclasses import dataclass

from smsgw_core.errors import InvalidRequest
from smsgw_core.messages import RecipientMessage
from smsgw_core.pagination import MAX_POSITION, Page, PageRequest, page_of
from smsgw_core.ports import HistoryFilter, UnitOfWork, UnitOfWorkFactory
from smsgw_core.transactions import in_transaction


@dataclass
class History:
    uow: UnitOfWorkFactory

    async def query(self, query: HistoryFilter, page: PageRequest) -> Page[RecipientMessage]:
        if not 0 < query.customer_id <= MAX_POSITION:  # the user_id columns are BIGINT
            raise InvalidRequest("user_id", f"must be an integer from 1 to {MAX_POSITION}")

        async def read(uow: UnitOfWork) -> list[tuple[int, RecipientMessage]]:
            return await uow.messages.history(query, page.limit + 1, page.before)

        rows = await in_transaction(self.uow, read)  # SQLite: a busy reader gives up too
        return page_of(rows, page)
