"""The prepaid ledger: every balance change is a transaction with a unique id.

Rules: a balance is the sum of its account's transactions and never negative; a
transaction id applies at most once; a refund never exceeds its charge (one
refund per failed recipient, of that recipient's share).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

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
    customer_id: int
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


def topup_id(customer_id: int, key: str) -> str:
    return f"topup:{customer_id}:{key}"


def refused_charges(charges: Sequence[Transaction], balances: Mapping[int, int]) -> list[int]:
    """The positions of the charges `balances` refuse, taken in order, each against
    what the ones before it left; an account missing from `balances` refuses all of its."""
    left = dict(balances)
    refused = []
    for position, tx in enumerate(charges):
        current = left.get(tx.customer_id)
        if current is None or current + tx.amount < 0:
            refused.append(position)
        else:
            left[tx.customer_id] = current + tx.amount
    return refused
