"""Top-ups and the balance view."""

from __future__ import annotations

from dataclasses import dataclass, field

from smsgw_core.errors import DuplicateTransaction, InvalidRequest, UnknownAccount
from smsgw_core.ledger import Transaction, TransactionType, topup_id
from smsgw_core.pagination import Page, PageRequest, page_of
from smsgw_core.ports import Clock, IdGenerator, UnitOfWork, UnitOfWorkFactory
from smsgw_core.telemetry import NoTelemetry, Telemetry
from smsgw_core.transactions import in_transaction

MAX_DESCRIPTION = 255


@dataclass(frozen=True, slots=True)
class TopUp:
    user_id: int
    amount: int
    description: str = ""
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class AccountView:
    user_id: int
    balance: int
    transactions: Page[Transaction]


@dataclass
class Accounts:
    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator
    telemetry: Telemetry = field(default_factory=NoTelemetry)

    async def top_up(self, command: TopUp) -> int:
        """Credit the account (creating it if new); return the new balance.

        With an idempotency key the top-up applies at most once: a retry of the
        same key only reads the balance back.
        """
        if command.user_id <= 0:
            raise InvalidRequest("user_id", "must be a positive integer")
        if command.amount <= 0:
            raise InvalidRequest("balance", "must be a positive integer")
        if len(command.description) > MAX_DESCRIPTION:
            raise InvalidRequest("description", f"at most {MAX_DESCRIPTION} characters")
        key = command.idempotency_key or self.ids.new_id()
        tx = Transaction(
            topup_id(command.user_id, key), command.user_id, command.amount,
            TransactionType.TOPUP, command.description, self.clock.now(),
        )

        async def credit(uow: UnitOfWork) -> int | None:
            await uow.ledger.apply(tx)
            balance = await uow.ledger.balance(command.user_id)
            await uow.commit()
            return balance

        async def read_balance(uow: UnitOfWork) -> int | None:
            return await uow.ledger.balance(command.user_id)

        try:
            balance = await in_transaction(self.uow, credit)  # re-run whole on a deadlock
            self.telemetry.ledger(TransactionType.TOPUP, command.amount)
        except DuplicateTransaction:
            if command.idempotency_key is None:
                raise
            balance = await in_transaction(self.uow, read_balance)
        assert balance is not None
        return balance

    async def view(self, user_id: int, page: PageRequest) -> AccountView:
        if user_id <= 0:
            raise InvalidRequest("user_id", "must be a positive integer")

        async def read(uow: UnitOfWork) -> AccountView:
            balance = await uow.ledger.balance(user_id)
            if balance is None:
                raise UnknownAccount(user_id)
            rows = await uow.ledger.transactions(user_id, page.limit + 1, page.before)
            return AccountView(user_id, balance, page_of(rows, page))

        return await in_transaction(self.uow, read)  # SQLite: a busy reader gives up too
