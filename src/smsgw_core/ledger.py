"""The prepaid ledger: every balance change is a transaction with a unique id.

Rules: a balance is the sum of its account's transactions and never negative; a
transaction id applies at most once; a refund never exceeds its charge (one
refund per failed recipient, of that recipient's share).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from smsgw_core.errors import DuplicateTransaction, InsufficientBalance

# The largest balance a top-up may leave (README, "Balance"): far below 2^63 - 1, so
# no sum of balances, charges and refunds can overflow a BIGINT column or turn
# into a float on SQLite, on any backend.
MAX_BALANCE = 10**15
MAX_TRANSACTION_ID = 100  # characters: the width of user_transactions.transaction_id


class TransactionType(enum.Enum):
    TOPUP = "topup"
    CHARGE = "charge"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class Transaction:
    transaction_id: str
    user_id: int
    amount: int  # signed: charges are negative
    type: TransactionType
    description: str
    created_at: datetime

    def __post_init__(self) -> None:
        if self.type is TransactionType.CHARGE and self.amount > 0:
            raise ValueError("a charge must not add money")
        if self.type is not TransactionType.CHARGE and self.amount <= 0:
            raise ValueError(f"a {self.type.value} must add money")


def charge_id(sms_identifier: str) -> str:
    return f"charge:{sms_identifier}"


def refund_id(sms_identifier: str, recipient: str) -> str:
    return f"refund:{sms_identifier}:{recipient}"


def topup_id(user_id: int, key: str) -> str:
    return f"topup:{user_id}:{key}"


@dataclass(slots=True)
class Account:
    """One customer's balance with its history; the reference model of the rules."""

    user_id: int
    balance: int = 0
    transactions: list[Transaction] = field(default_factory=list)

    def apply(self, tx: Transaction, applied_ids: set[str]) -> None:
        """Apply `tx` or raise, changing nothing. `applied_ids` spans all accounts."""
        if tx.transaction_id in applied_ids:
            raise DuplicateTransaction(tx.transaction_id)
        if self.balance + tx.amount < 0:
            raise InsufficientBalance(self.user_id, -tx.amount)
        self.balance += tx.amount
        self.transactions.append(tx)
        applied_ids.add(tx.transaction_id)
