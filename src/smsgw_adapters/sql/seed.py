"""Bulk SQL for load tests: seed many balances at once, read a run's outcomes.

Seeding is a top-up like any other: one ``user_transactions`` row per user
under a unique id, and the balance upserted by the same amount in the same
transaction, so a balance stays the sum of its transactions. It is written
with multi-row statements, a chunk of users per transaction, because the API
(one request and one transaction per user) is far too slow for thousands.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smsgw_adapters.sql.ledger import add_to_balance
from smsgw_adapters.sql.schema import sms_status, user_transactions
from smsgw_core.ledger import TransactionType, topup_id

SEED_CHUNK = 2_000  # users per transaction: 2 statements of 2,000 rows each
OUTCOME_CHUNK = 1_000  # sms identifiers per IN (...) query

_sms = sms_status.c


def seed_transaction_id(run_id: str, customer_id: int) -> str:
    """The top-up id of one user's seed in run `run_id`: unique per run and user."""
    return topup_id(customer_id, f"seed-{run_id}")


async def seed_balances(
    engine: AsyncEngine, first_user: int, users: int, balance: int, run_id: str,
    *, chunk: int = SEED_CHUNK,
) -> None:
    """Top up users first_user .. first_user+users-1 by `balance` each.

    Each chunk of users is one transaction: their top-up rows (type topup, id
    ``topup:<user>:seed-<run_id>``), then their balances upserted (+balance,
    the row created if missing). A run id used twice fails on the unique
    transaction id and changes nothing in that chunk.
    """
    if first_user <= 0 or users <= 0 or balance <= 0:
        raise ValueError("first_user, users and balance must be positive")
    now = datetime.now(UTC)
    description = f"load test seed {run_id}"
    # SqlLedger's credit upsert, for executemany: the drivers send one multi-row
    # INSERT for a batch (asyncmy rewrites it, sqlite3 prepares it once).
    credit = add_to_balance(engine.dialect.name)
    for start in range(first_user, first_user + users, chunk):
        ids = range(start, min(start + chunk, first_user + users))
        async with engine.begin() as conn:
            await conn.execute(user_transactions.insert(), [
                {"user_id": customer_id, "amount": balance,
                 "transaction_type": TransactionType.TOPUP.value, "description": description,
                 "transaction_id": seed_transaction_id(run_id, customer_id), "created_at": now}
                for customer_id in ids
            ])
            await conn.execute(credit, [
                {"user_id": customer_id, "balance": balance, "last_updated": now}
                for customer_id in ids
            ])


@dataclass(frozen=True, slots=True)
class RecipientRow:
    """One recipient row of an accepted SMS, as a load test reads it back."""

    sms_identifier: str
    type: str  # normal | express
    status: str  # PENDING | SENDING | DONE | FAILED
    created_at: datetime
    updated_at: datetime


async def recipient_outcomes(
    engine: AsyncEngine, sms_identifiers: Iterable[str], *, chunk: int = OUTCOME_CHUNK,
) -> list[RecipientRow]:
    """Every ``sms_status`` row of these SMS, read in chunks with IN (...).

    Each lookup is a range of the unique index (sms_identifier, recipient).
    """
    identifiers = list(sms_identifiers)
    found: list[RecipientRow] = []
    for start in range(0, len(identifiers), chunk):
        # A connection (and transaction) per chunk: on SQLite every transaction
        # takes the write lock, which the gateway under test must not wait on long.
        async with engine.connect() as conn:
            found.extend(await _outcomes(conn, identifiers[start:start + chunk]))
    return found


async def _outcomes(conn: AsyncConnection, identifiers: Sequence[str]) -> list[RecipientRow]:
    rows = await conn.execute(
        sa.select(_sms.sms_identifier, _sms.type, _sms.status, _sms.created_at, _sms.updated_at)
        .where(_sms.sms_identifier.in_(identifiers))
    )
    return [RecipientRow(str(sms), str(kind), str(status), created_at, updated_at)
            for sms, kind, status, created_at, updated_at in rows]
