"""Builders shared by the contract tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from smsgw_core.ledger import Transaction, TransactionType
from smsgw_core.messages import MessageType, RecipientMessage, SmsStatus
from smsgw_core.outbox import DeliveryJob
from smsgw_core.ports import MessageRepository, RecipientFinish

# Whole seconds: the original schema's DATETIME columns keep no fraction on MySQL.
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def topup(tx_id: str, customer_id: int, amount: int, when: datetime = T0) -> Transaction:
    return Transaction(tx_id, customer_id, amount, TransactionType.TOPUP, f"top-up {tx_id}", when)


def charge(tx_id: str, customer_id: int, cost: int, when: datetime = T0) -> Transaction:
    return Transaction(tx_id, customer_id, -cost, TransactionType.CHARGE, f"charge {tx_id}", when)


def messages(
    sms_identifier: str, customer_id: int, *recipients: str, when: datetime = T0,
    type: MessageType = MessageType.NORMAL,
) -> list[RecipientMessage]:
    return [
        RecipientMessage(sms_identifier, customer_id, r, type, SmsStatus.PENDING, "", when, when)
        for r in recipients
    ]


def delivery(
    sms_identifier: str, *recipients: str, customer_id: int = 1,
    type: MessageType = MessageType.NORMAL,
) -> DeliveryJob:
    return DeliveryJob(
        sms_identifier, customer_id, type, f"hello from {sms_identifier} ✓",
        tuple(recipients or ("+989120000001",)), 1,
    )


async def claim(repo: MessageRepository, sms_identifier: str, when: datetime) -> list[str]:
    """One SMS's claim, through the port's batch: the recipients it moved to SENDING."""
    return (await repo.claim_many([sms_identifier], when)).get(sms_identifier, [])


async def finish(
    repo: MessageRepository, sms_identifier: str, recipient: str, status: SmsStatus,
    provider: str, when: datetime,
) -> bool:
    """One recipient's finish, through the port's batch: whether it moved."""
    move = RecipientFinish(sms_identifier, recipient, status, provider)
    [moved] = await repo.finish_many([move], when)
    return moved
