"""The ledger: transaction rows and the guarded balance they move."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError

from smsgw_adapters.sql.repository import SqlRepository, force_index, force_index_update
from smsgw_adapters.sql.schema import user_balances, user_transactions
from smsgw_adapters.sql.types import MYSQL_DIALECTS
from smsgw_core.errors import DuplicateTransaction, InsufficientBalance, TransientConflict
from smsgw_core.ledger import Transaction, TransactionType, refused_charges

_tx = user_transactions.c
_bal = user_balances.c
# Built once: the accept path runs them for every request or batch.
_INSERT_TX = user_transactions.insert()
# Credits that meet a duplicate id part-way are undone by rolling back to a
# savepoint taken before them, not by a DELETE … WHERE transaction_id IN (…):
# over a small table the optimizer scans it whole (even by primary key), the
# scan waits on the rows a concurrent group just inserted while that group waits
# for the balance row this one holds, and the two deadlock (seen with 100 racing
# sends for one customer). Undo needs no lock. (A refused debit group rolls its
# whole transaction back instead: see debit_many.)
_SAVEPOINT = "SAVEPOINT smsgw_ledger"
_UNDO = "ROLLBACK TO SAVEPOINT smsgw_ledger"
_BALANCES = sa.select(_bal.user_id, _bal.balance).where(
    _bal.user_id.in_(sa.bindparam("users", expanding=True)))
_LOCK_BALANCES = force_index("uq_user_balances_user_id", user_balances,
                             _BALANCES.order_by(_bal.user_id).with_for_update())


class SqlLedger(SqlRepository):
    async def apply(self, tx: Transaction) -> None:
        # The transaction row goes first: its unique id decides "at most once",
        # and the balance row, the customer's hot lock, is held the shortest.
        try:
            await self._conn.execute(_INSERT_TX, _row(tx))
        except IntegrityError:
            raise DuplicateTransaction(tx.transaction_id) from None
        if tx.amount <= 0:  # a free charge still needs an existing account
            await self._debit(tx)
        else:
            # Locked and moved as credit_many moves many: not by the upsert, whose
            # next-key locks reach past this account's row (see debit_many).
            await self._credit_balances([tx])

    async def _debit(self, tx: Transaction) -> None:
        moved = await self._conn.execute(
            user_balances.update()
            .where(_bal.user_id == tx.customer_id, _bal.balance + tx.amount >= 0)
            .values(balance=_bal.balance + tx.amount, last_updated=tx.created_at)
        )
        if moved.rowcount != 1:
            # Undo the row so the call changes nothing, as the port promises,
            # even if a caller goes on to commit; only the refused path pays this.
            await self._conn.execute(
                user_transactions.delete().where(_tx.transaction_id == tx.transaction_id)
            )
            raise InsufficientBalance(tx.customer_id, -tx.amount)

    async def debit_many(self, charges: Sequence[Transaction]) -> list[int]:
        if not charges:
            return []
        # Two round trips on the path every accept group takes: the rows, then one
        # guarded UPDATE of every account at once. No savepoint and no locking read
        # before it: a refusal (the rare path) rolls the whole transaction back, as
        # the port says, and only then reads what the balances allow.
        try:
            await self._conn.execute(_INSERT_TX, [_row(tx) for tx in charges])
        except IntegrityError:
            await self._conn.rollback()
            raise DuplicateTransaction(", ".join(tx.transaction_id for tx in charges)) from None
        moves = _moves(charges)
        users = sorted(moves)
        debited = await self._conn.execute(
            _guarded_debit(moves), {"users": users, "at": max(tx.created_at for tx in charges)}
        )
        if debited.rowcount == len(users):  # each account covered all of its charges
            return []
        await self._conn.rollback()
        found = await self._conn.execute(_BALANCES, {"users": users})
        refused = refused_charges(charges, {user: balance for user, balance in found})
        if not refused:
            # A top-up landed between the UPDATE and the read: the group fits now.
            raise TransientConflict("the balances moved while a group was refused")
        return refused

    async def credit_many(self, credits: Sequence[Transaction]) -> None:
        if not credits:
            return
        ids = [tx.transaction_id for tx in credits]
        for tx in credits:
            if tx.amount <= 0:
                raise ValueError(f"credit {tx.transaction_id} does not add money")
        if len(set(ids)) != len(ids):
            raise DuplicateTransaction(next(i for i in ids if ids.count(i) > 1))
        await self._insert_all(credits)
        await self._credit_balances(credits)

    async def _insert_all(self, txs: Sequence[Transaction]) -> None:
        """Insert every row after a savepoint (which a duplicate rolls back to), or none."""
        await self._conn.exec_driver_sql(_SAVEPOINT)
        try:
            await self._conn.execute(_INSERT_TX, [_row(tx) for tx in txs])
        except IntegrityError:
            # A many-row insert that meets a duplicate part-way may keep the rows
            # before it (SQLite inserts them one by one): the port promises none.
            await self._conn.exec_driver_sql(_UNDO)
            raise DuplicateTransaction(", ".join(tx.transaction_id for tx in txs)) from None

    async def _credit_balances(self, credits: Sequence[Transaction]) -> None:
        """Add the credits to their accounts: locked in user_id order, as debit_many locks."""
        moved = _moves(credits)
        at = max(tx.created_at for tx in credits)
        locked = await self._conn.execute(_LOCK_BALANCES, {"users": sorted(moved)})
        existing = {user for user, _ in locked}
        if existing:
            await self._move({u: m for u, m in moved.items() if u in existing}, at)
        # A new account (a first top-up; a refund's account always exists): the
        # upsert, in case a concurrent credit creates it first. It locks beyond
        # the row, but only on this rare path.
        for user in sorted(moved.keys() - existing):
            await self._conn.execute(
                add_to_balance(self._dialect),
                {"user_id": user, "balance": moved[user], "last_updated": at},
            )

    async def _move(self, moved: dict[int, int], at: datetime) -> None:
        # One statement for every account of the group, on rows already locked.
        # Not the upsert: INSERT … ON DUPLICATE KEY UPDATE takes next-key locks
        # beyond the rows locked, and two groups then deadlock (seen at 8 groups
        # of 32 at once).
        await self._conn.execute(
            user_balances.update()
            .where(_bal.user_id.in_(list(moved)))
            .values(
                balance=_bal.balance + sa.case(moved, value=_bal.user_id),
                last_updated=at,
            )
        )

    async def balance(self, customer_id: int) -> int | None:
        found = await self._conn.scalar(
            sa.select(_bal.balance).where(_bal.user_id == customer_id)
        )
        return None if found is None else int(found)

    async def transactions(
        self, customer_id: int, limit: int, before: int | None
    ) -> list[tuple[int, Transaction]]:
        query = (
            sa.select(user_transactions)
            .where(_tx.user_id == customer_id)
            .order_by(_tx.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(_tx.id < before)
        rows = await self._conn.execute(query)
        return [(row.id, _transaction(row)) for row in rows]


def _row(tx: Transaction) -> dict[str, Any]:
    return {
        "user_id": tx.customer_id,
        "amount": tx.amount,
        "transaction_type": tx.type.value,
        "description": tx.description,
        "transaction_id": tx.transaction_id,
        "created_at": tx.created_at,
    }


def _transaction(row: sa.Row[Any]) -> Transaction:
    return Transaction(
        transaction_id=row.transaction_id,
        customer_id=row.user_id,
        amount=row.amount,
        type=TransactionType(row.transaction_type),
        description=row.description or "",
        created_at=row.created_at,
    )


def _guarded_debit(moves: dict[int, int]) -> sa.Update:
    """Move every account of `moves` that can take its whole move, and no other.

    Along the user_id key, so the rows are locked in user_id order (as every
    group locks them: two groups cannot deadlock) and no other row is; not the
    upsert, whose next-key locks reach past the rows (see `_move`).
    """
    move = sa.case(moves, value=_bal.user_id)
    return force_index_update("uq_user_balances_user_id", user_balances.update()
        .where(_bal.user_id.in_(sa.bindparam("users", expanding=True)), _bal.balance + move >= 0)
        .values(balance=_bal.balance + move, last_updated=sa.bindparam("at")))


def _moves(txs: Sequence[Transaction]) -> dict[int, int]:
    """How much each account moves, keyed by user_id."""
    moved: dict[int, int] = {}
    for tx in txs:
        moved[tx.customer_id] = moved.get(tx.customer_id, 0) + tx.amount
    return moved


@functools.cache
def add_to_balance(dialect: str) -> sa.Executable:
    """INSERT, or add to the balance of the account that exists (credits create accounts)."""
    if dialect == "sqlite":
        lite = sqlite.insert(user_balances)
        return lite.on_conflict_do_update(
            index_elements=[_bal.user_id],
            set_={
                "balance": _bal.balance + lite.excluded.balance,
                "last_updated": lite.excluded.last_updated,
            },
        )
    if dialect in MYSQL_DIALECTS:
        my = mysql.insert(user_balances)
        return my.on_duplicate_key_update(
            balance=_bal.balance + my.inserted.balance,
            last_updated=my.inserted.last_updated,
        )
    raise NotImplementedError(f"no upsert for {dialect}")
