"""Settling recipients: their move out of SENDING, with the refund of each one that failed.

The deliverer settles what the operators answered; the relay settles, as
expired, SMS whose validity ran out before they reached a worker. Either way it
is one transaction: the status moves (only from SENDING, so a recipient settles
once however many deliveries race for it), the outbox event of every SMS with
deferred recipients made due again at its retry time, and the refunds, keyed by
(sms, recipient) so each is paid at most once, credited last and in user-id
order: the balance rows are the hot locks, and every transaction that moves
several of them takes them in that one order, so two cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from smsgw_core.ledger import Transaction, TransactionType, refund_id
from smsgw_core.messages import SmsStatus
from smsgw_core.outbox import DeliveryJob
from smsgw_core.ports import RecipientFinish, UnitOfWork
from smsgw_core.validity import FailureReason


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where a claimed recipient goes: DONE, FAILED (with why), or back to PENDING."""

    recipient: str
    status: SmsStatus
    provider: str = ""
    reason: FailureReason | None = None  # FAILED only


@dataclass(frozen=True, slots=True)
class Settlement:
    delivery: DeliveryJob
    verdicts: Sequence[Verdict]
    retry_at: datetime | None = None  # when deferred (PENDING) recipients are tried again


async def settle(
    uow: UnitOfWork, settlements: Sequence[Settlement], now: datetime
) -> list[list[Verdict]]:
    """Apply each verdict whose recipient is still SENDING; return the applied ones,
    per settlement. The caller commits."""
    outcomes = [
        RecipientFinish(s.delivery.sms_identifier, v.recipient, v.status, v.provider)
        for s in settlements for v in s.verdicts
    ]
    moved = iter(await uow.messages.finish_many(outcomes, now))
    applied: list[list[Verdict]] = []
    refunds: list[Transaction] = []
    retries: dict[str, datetime] = {}
    for s in settlements:
        kept = [v for v in s.verdicts if next(moved)]  # the others: settled concurrently
        applied.append(kept)
        for v in kept:
            if v.status is SmsStatus.FAILED and s.delivery.unit_share > 0:
                refunds.append(refund(s.delivery, v.recipient, v.reason, now))
            elif v.status is SmsStatus.PENDING:
                retries[s.delivery.sms_identifier] = s.retry_at or now
    if retries:
        await uow.outbox.defer(retries, now)
    if refunds:  # one call: it locks every balance row it moves in user-id order
        await uow.ledger.credit_many(refunds)
    return applied


def refund(
    delivery: DeliveryJob, recipient: str, reason: FailureReason | None, at: datetime
) -> Transaction:
    why = (reason or FailureReason.REJECTED).value
    return Transaction(
        refund_id(delivery.sms_identifier, recipient), delivery.customer_id, delivery.unit_share,
        TransactionType.REFUND, f"refund: {recipient} undeliverable ({why})", at,
    )
