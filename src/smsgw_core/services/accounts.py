"""Top-ups and the balance view."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from smsgw_core.errors import (
    BalanceLimit,
    DuplicateIdempotencyKey,
    DuplicateTransaction,
    IdempotencyConflict,
    InvalidRequest,
    UnknownAccount,
)
from smsgw_core.ledger import (
    MAX_BALANCE,
    MAX_TRANSACTION_ID,
    Transaction,
    TransactionType,
    topup_id,
)
from smsgw_core.pagination import MAX_POSITION, Page, PageRequest, page_of
from smsgw_core.ports import Clock, IdGenerator, StoredResponse, UnitOfWork, UnitOfWorkFactory
from smsgw_core.services.send_sms import MAX_IDEMPOTENCY_KEY
from smsgw_core.telemetry import NoTelemetry, Telemetry
from smsgw_core.transactions import in_transaction

MAX_DESCRIPTION = 255
MAX_ID = MAX_POSITION  # user ids are BIGINT columns too


@dataclass(frozen=True, slots=True)
class TopUp:
    customer_id: int
    amount: int
    description: str = ""
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        body = ["topup", self.customer_id, self.amount, self.description]
        return hashlib.sha256(json.dumps(body, ensure_ascii=False).encode()).hexdigest()


def _key_owner(customer_id: int) -> int:
    """Where a top-up's Idempotency-Key is stored: under the negated user id.

    Send keys are stored under the customer id, always >= 1, so a top-up key can
    never meet a send key, whatever either spells.
    """
    return -customer_id


def _transaction_id(customer_id: int, key: str) -> str:
    """The key's own spelling while it fits the column (as top-ups always had), else
    its digest. Two keys sharing an id can only cost a 409, never a second credit:
    the stored fingerprint decides (see top_up)."""
    literal = topup_id(customer_id, key)
    if len(literal) <= MAX_TRANSACTION_ID:
        return literal
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return topup_id(customer_id, f"sha256:{digest}")


@dataclass(frozen=True, slots=True)
class AccountView:
    customer_id: int
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

        With an idempotency key the top-up applies at most once: a retry with the
        same body answers what the first answered, another body is a conflict.
        A top-up that would take the balance past MAX_BALANCE writes nothing.
        """
        if not 0 < command.customer_id <= MAX_ID:
            raise InvalidRequest("user_id", f"must be an integer from 1 to {MAX_ID}")
        if not 0 < command.amount <= MAX_BALANCE:
            raise InvalidRequest("balance", f"must be an integer from 1 to {MAX_BALANCE}")
        if len(command.description) > MAX_DESCRIPTION:
            raise InvalidRequest("description", f"at most {MAX_DESCRIPTION} characters")
        key = command.idempotency_key
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidRequest("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters")
        if key is not None and (replay := await self._replay(command, key)) is not None:
            return replay
        now = self.clock.now()
        tx = Transaction(
            _transaction_id(command.customer_id, key or self.ids.new_id()), command.customer_id,
            command.amount, TransactionType.TOPUP, command.description, now,
        )

        async def credit(uow: UnitOfWork) -> int:
            await uow.ledger.apply(tx)
            # Read inside the transaction, which holds the balance row since the
            # credit: no concurrent top-up can slip past the maximum in between.
            balance = await uow.ledger.balance(command.customer_id)
            assert balance is not None
            if balance > MAX_BALANCE:
                raise BalanceLimit(MAX_BALANCE)  # leaving the unit of work rolls the credit back
            if key is not None:
                stored = StoredResponse(command.fingerprint(), {"balance": balance})
                await uow.idempotency.add(_key_owner(command.customer_id), key, stored, now)
            await uow.commit()
            return balance

        try:
            balance = await in_transaction(self.uow, credit)  # re-run whole on a deadlock
        except (DuplicateTransaction, DuplicateIdempotencyKey):
            # A concurrent request with the same key committed first: answer as it did.
            if key is None:
                raise
            replay = await self._replay(command, key)
            if replay is None:
                # The transaction id is taken by a top-up that stored no fingerprint
                # (one from before they were stored): it cannot be compared, and
                # answering 200 would claim a credit that did not happen.
                raise IdempotencyConflict(key) from None
            return replay
        self.telemetry.ledger(TransactionType.TOPUP, command.amount)
        return balance

    async def _replay(self, command: TopUp, key: str) -> int | None:
        async with self.uow() as uow:
            stored = await uow.idempotency.get(_key_owner(command.customer_id), key)
        if stored is None:
            return None
        if stored.request_hash != command.fingerprint():
            raise IdempotencyConflict(key)
        return int(stored.response["balance"])

    async def view(self, customer_id: int, page: PageRequest) -> AccountView:
        if not 0 < customer_id <= MAX_ID:
            raise InvalidRequest("user_id", f"must be an integer from 1 to {MAX_ID}")

        async def read(uow: UnitOfWork) -> AccountView:
            balance = await uow.ledger.balance(customer_id)
            if balance is None:
                raise UnknownAccount(customer_id)
            rows = await uow.ledger.transactions(customer_id, page.limit + 1, page.before)
            return AccountView(customer_id, balance, page_of(rows, page))

        return await in_transaction(self.uow, read)  # SQLite: a busy reader gives up too
