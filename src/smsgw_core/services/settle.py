"""Settling recipients: their move out of SENDING, with the refund of each one that failed.

The deliverer settles what the operators answered; the relay settles, as
expired, SMS whose validity ran out before they reached a worker. Either way it
is one transaction: the status moves (only from SENDING, so a recipient settles
once however many deliveries race for it), the outbox event of every SMS with
deferred recipients made due again at its retry time, and the refunds, keyed by
(sms, recipient) so each is paid at most once, credited last and in user-id
order: the balance rows are the hot locks, and every transaction that moves
several of them takes them in that one order, so two cannot deadlock.

A recipient settled DONE keeps the operator's message id; receipts that
arrived for that id before this answer (kept, see receipts.py) are applied in
the same transaction, their refunds credited with the others. The webhook
events of every move (status_events.py) are written in it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from smsgw_core.ledger import Transaction, TransactionType, refund_id
from smsgw_core.messages import SmsStatus
from smsgw_core.outbox import DeliveryJob
from smsgw_core.ports import RecipientFinish, UnitOfWork
from smsgw_core.receipts import OperatorMessage, ReceiptPolicy
from smsgw_core.services.receipts import ReceiptOutcome, apply_receipts
from smsgw_core.services.status_events import record_events
from smsgw_core.validity import FailureReason
from smsgw_core.webhooks import StatusChange


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where a claimed recipient goes: DONE, FAILED (with why), or back to PENDING."""

    recipient: str
    status: SmsStatus
    provider: str = ""
    reason: FailureReason | None = None  # FAILED only
    message_id: str = ""  # DONE only: the operator's id for it


@dataclass(frozen=True, slots=True)
class Settlement:
    delivery: DeliveryJob
    verdicts: Sequence[Verdict]
    retry_at: datetime | None = None  # when deferred (PENDING) recipients are tried again


@dataclass(frozen=True, slots=True)
class Settled:
    verdicts: list[list[Verdict]]  # the applied ones, per settlement
    receipts: ReceiptOutcome  # kept receipts applied to recipients settled DONE now


async def settle(
    uow: UnitOfWork, settlements: Sequence[Settlement], now: datetime,
    receipts: ReceiptPolicy | None = None,
) -> Settled:
    """Apply each verdict whose recipient is still SENDING, and the receipts kept for
    those settled DONE (under `receipts`; None: receipts are not looked for). The
    caller commits."""
    outcomes = [
        RecipientFinish(s.delivery.sms_identifier, v.recipient, v.status, v.provider,
                        v.message_id)
        for s in settlements for v in s.verdicts
    ]
    moved = iter(await uow.messages.finish_many(outcomes, now))
    applied: list[list[Verdict]] = []
    refunds: list[Transaction] = []
    retries: dict[str, datetime] = {}
    taken: list[OperatorMessage] = []
    shares: dict[str, int] = {}
    changes: list[StatusChange] = []
    for s in settlements:
        kept = [v for v in s.verdicts if next(moved)]  # the others: settled concurrently
        applied.append(kept)
        for v in kept:
            if v.status is not SmsStatus.PENDING:
                changes.append(change_of(s.delivery, v))
            if v.status is SmsStatus.FAILED and s.delivery.unit_share > 0:
                refunds.append(refund(s.delivery, v.recipient, v.reason, now))
            elif v.status is SmsStatus.PENDING:
                retries[s.delivery.sms_identifier] = s.retry_at or now
            elif v.status is SmsStatus.DONE and v.message_id:
                taken.append(OperatorMessage(v.provider, v.message_id))
                shares[s.delivery.sms_identifier] = s.delivery.unit_share
    if retries:
        await uow.outbox.defer(retries, now)
    await record_events(uow, changes, now)
    outcome = ReceiptOutcome()
    if taken and receipts is not None:
        waiting = await uow.receipts.waiting(taken)
        if waiting:
            outcome = await apply_receipts(uow, waiting, receipts, now, shares)
            refunds += outcome.refunds
    if refunds:  # one call: it locks every balance row it moves in user-id order
        await uow.ledger.credit_many(refunds)
    return Settled(applied, outcome)


def change_of(delivery: DeliveryJob, v: Verdict) -> StatusChange:
    why = (v.reason or FailureReason.REJECTED).value if v.status is SmsStatus.FAILED else ""
    return StatusChange(delivery.customer_id, delivery.sms_identifier, v.recipient, v.status,
                        SmsStatus.SENDING, v.provider, why)


def refund(
    delivery: DeliveryJob, recipient: str, reason: FailureReason | None, at: datetime
) -> Transaction:
    why = (reason or FailureReason.REJECTED).value
    return Transaction(
        refund_id(delivery.sms_identifier, recipient), delivery.customer_id, delivery.unit_share,
        TransactionType.REFUND, f"refund: {recipient} undeliverable ({why})", at,
    )
