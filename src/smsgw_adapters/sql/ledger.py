"""The ledger: transaction rows and the guarded balance they move."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError

from smsgw_adapters.sql.repository import SqlRepository
from smsgw_adapters.sql.schema import user_balances, user_transactions
from smsgw_adapters.sql.types import MYSQL_DIALECTS
from smsgw_core.errors import DuplicateTransaction, InsufficientBalance
from smsgw_core.ledger import Transaction, TransactionType

_tx = user_transactions.c
_bal = user_balances.c


class SqlLedger(SqlRepository):
    async def apply(self, tx: Transaction) -> None:
        # The transaction row goes first: its unique id decides "at most once",
        # and the balance row, the customer's hot lock, is held the shortest.
        try:
            await self._conn.execute(user_transactions.insert().values(_row(tx)))
        except IntegrityError:
            raise DuplicateTransaction(tx.transaction_id) from None
        if tx.amount <= 0:  # a free charge still needs an existing account
            await self._debit(tx)
        else:
            await self._conn.execute(self._credit(tx))

    async def _debit(self, tx: Transaction) -> None:
        moved = await self._conn.execute(
            user_balances.update()
            .where(_bal.user_id == tx.user_id, _bal.balance + tx.amount >= 0)
            .values(balance=_bal.balance + tx.amount, last_updated=tx.created_at)
        )
        if moved.rowcount != 1:
            # Undo the row so the call changes nothing, as the port promises,
            # even if a caller goes on to commit; only the refused path pays this.
            await self._conn.execute(
                user_transactions.delete().where(_tx.transaction_id == tx.transaction_id)
            )
            raise InsufficientBalance(tx.user_id, -tx.amount)

    def _credit(self, tx: Transaction) -> sa.Executable:
        values = {"user_id": tx.user_id, "balance": tx.amount, "last_updated": tx.created_at}
        if self._dialect == "sqlite":
            lite = sqlite.insert(user_balances).values(values)
            return lite.on_conflict_do_update(
                index_elements=[_bal.user_id],
                set_={
                    "balance": _bal.balance + lite.excluded.balance,
                    "last_updated": lite.excluded.last_updated,
                },
            )
        if self._dialect in MYSQL_DIALECTS:
            my = mysql.insert(user_balances).values(values)
            return my.on_duplicate_key_update(
                balance=_bal.balance + my.inserted.balance,
                last_updated=my.inserted.last_updated,
            )
        raise NotImplementedError(f"no upsert for {self._dialect}")

    async def balance(self, user_id: int) -> int | None:
        found = await self._conn.scalar(
            sa.select(_bal.balance).where(_bal.user_id == user_id)
        )
        return None if found is None else int(found)

    async def transactions(
        self, user_id: int, limit: int, before: int | None
    ) -> list[tuple[int, Transaction]]:
        query = (
            sa.select(user_transactions)
            .where(_tx.user_id == user_id)
            .order_by(_tx.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(_tx.id < before)
        rows = await self._conn.execute(query)
        return [(row.id, _transaction(row)) for row in rows]


def _row(tx: Transaction) -> dict[str, Any]:
    return {
        "user_id": tx.user_id,
        "amount": tx.amount,
        "transaction_type": tx.type.value,
        "description": tx.description,
        "transaction_id": tx.transaction_id,
        "created_at": tx.created_at,
    }


def _transaction(row: sa.Row[Any]) -> Transaction:
    return Transaction(
        transaction_id=row.transaction_id,
        user_id=row.user_id,
        amount=row.amount,
        type=TransactionType(row.transaction_type),
        description=row.description or "",
        created_at=row.created_at,
    )
