"""The in-memory database and its unit of work: serialized and all-or-nothing."""

from __future__ import annotations

import asyncio
import copy
from types import TracebackType
from typing import Self

from smsgw_core.testing.repositories import (
    InMemoryIdempotency,
    InMemoryLedger,
    InMemoryMessages,
    InMemoryOutbox,
    InMemoryReceipts,
)
from smsgw_core.testing.state import InMemoryState
from smsgw_core.testing.tenancy import InMemoryCustomers, InMemoryKeys
from smsgw_core.testing.webhooks import InMemoryWebhooks


class InMemoryDatabase:
    """The shared store; each unit of work edits a copy and swaps it in on commit."""

    def __init__(self) -> None:
        self.state = InMemoryState()
        self.lock = asyncio.Lock()
        self.commits = 0
        # Raised, one per commit, instead of committing: for tests of what a caller
        # does when the database gives up a transaction (e.g. TransientConflict).
        self.fail_commits: list[Exception] = []

    def uow(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)




class InMemoryUnitOfWork:
    """Serialized (one at a time, like SQLite's writer) and all-or-nothing."""

    def __init__(self, db: InMemoryDatabase) -> None:
        self.db = db
        self.working: InMemoryState | None = None
        self.committed = False
        self.ledger = InMemoryLedger(self)
        self.messages = InMemoryMessages(self)
        self.outbox = InMemoryOutbox(self)
        self.idempotency = InMemoryIdempotency(self)
        self.customers = InMemoryCustomers(self)
        self.keys = InMemoryKeys(self)
        self.receipts = InMemoryReceipts(self)
        self.webhooks = InMemoryWebhooks(self)

    async def __aenter__(self) -> Self:
        await self.db.lock.acquire()
        self.working = copy.deepcopy(self.db.state)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.working = None
        self.db.lock.release()

    async def commit(self) -> None:
        if self.working is None:
            raise RuntimeError("commit outside `async with`")
        if self.db.fail_commits:
            raise self.db.fail_commits.pop(0)
        self.db.state = self.working
        self.working = copy.deepcopy(self.working)
        self.db.commits += 1
        self.committed = True

    async def rollback(self) -> None:
        if self.working is not None:
            self.working = copy.deepcopy(self.db.state)
