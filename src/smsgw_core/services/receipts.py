"""Taking in operators' delivery receipts, and applying those that came first.

A receipt batch is one transaction: each receipt is kept if it is the first
for its operator message id (a repeat, or a batch the operator sent again
because our 200 never reached it, changes nothing: counted a duplicate); the
DONE recipient each new one names moves to its final status; refunds, where
the gateway refunds undelivered messages, go through the ledger keyed by
(sms, recipient) like every refund, so a recipient is refunded at most once
whatever moved it. A receipt that names no recipient yet stays kept: when the
operator's answer naming that id is recorded, the outcome transaction applies
it (see settle.py), so a receipt that overtook its answer is never lost.

The receipt rows are the record of which receipt came first; the status move
only from DONE is what makes each apply once, however many processes take
receipts and outcomes at the same time (each inserts its row before it looks
for the other's, so of two racing transactions at least one sees both).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from smsgw_core.ledger import Transaction, TransactionType, refund_id
from smsgw_core.messages import SmsStatus
from smsgw_core.ports import Clock, Reached, UnitOfWork, UnitOfWorkFactory
from smsgw_core.receipts import Receipt, ReceiptPolicy
from smsgw_core.services.status_events import record_events
from smsgw_core.telemetry import NoTelemetry, Telemetry
from smsgw_core.transactions import in_transaction
from smsgw_core.webhooks import StatusChange

log = logging.getLogger("smsgw.receipts")


@dataclass(frozen=True, slots=True)
class ReceiptOutcome:
    """What became of some receipts: applied (with the seconds from DONE to each),
    kept for an answer still to come, or duplicates that changed nothing."""

    applied: list[tuple[Receipt, float]] = field(default_factory=list)
    kept: list[Receipt] = field(default_factory=list)
    duplicates: list[Receipt] = field(default_factory=list)
    refunds: list[Transaction] = field(default_factory=list)  # to credit in the same transaction


async def apply_receipts(
    uow: UnitOfWork, receipts: Sequence[Receipt], policy: ReceiptPolicy, now: datetime,
    shares: Mapping[str, int] | None = None,
) -> ReceiptOutcome:
    """Move the recipients these (first) receipts name; the refunds are returned for the
    caller to credit with its own, in one call (one lock order over the balances).
    `shares`: each SMS's refund per recipient where the caller knows it."""
    outcome = ReceiptOutcome()
    if not receipts:
        return outcome
    reached = await uow.messages.report_many(
        [(r.about, r.reported.status) for r in receipts], now)
    found = [r.about for r, hit in zip(receipts, reached, strict=True) if hit is not None]
    if found:
        await uow.receipts.matched(found)
    owed: list[tuple[Receipt, Reached]] = []
    changes: list[StatusChange] = []
    for receipt, hit in zip(receipts, reached, strict=True):
        if hit is None:
            outcome.kept.append(receipt)
        elif not hit.moved:
            outcome.duplicates.append(receipt)
        else:
            waited = (receipt.received_at - hit.done_at).total_seconds()
            outcome.applied.append((receipt, max(0.0, waited)))
            changes.append(StatusChange(
                hit.customer_id, hit.sms_identifier, hit.recipient, receipt.reported.status,
                SmsStatus.DONE, receipt.about.operator, receipt.error_code))
            if policy.refunds(receipt.reported):
                owed.append((receipt, hit))
    await record_events(uow, changes, now)
    if owed:
        known = dict(shares or {})
        missing = {hit.sms_identifier for _, hit in owed} - set(known)
        if missing:
            known.update(await uow.messages.shares(missing))
        for receipt, hit in owed:
            share = known.get(hit.sms_identifier, 0)
            if share > 0:
                outcome.refunds.append(refund_on_receipt(receipt, hit, share, now))
    return outcome


def refund_on_receipt(receipt: Receipt, hit: Reached, share: int, at: datetime) -> Transaction:
    code = f", error {receipt.error_code}" if receipt.error_code else ""
    return Transaction(
        refund_id(hit.sms_identifier, hit.recipient), hit.customer_id, share,
        TransactionType.REFUND,
        f"refund: {hit.recipient} {receipt.reported.value} "
        f"(receipt from {receipt.about.operator}{code})", at,
    )


@dataclass(frozen=True, slots=True)
class ReceiptCounts:
    applied: int
    kept: int
    duplicates: int


@dataclass
class ReceiptIntake:
    """Takes receipt batches (an operator's POST, an SMPP session, a simulator)."""

    uow: UnitOfWorkFactory
    clock: Clock
    policy: ReceiptPolicy = field(default_factory=ReceiptPolicy)
    telemetry: Telemetry = field(default_factory=NoTelemetry)
    orphans_per_pass: int = 1000

    async def take(self, receipts: Sequence[Receipt]) -> ReceiptCounts:
        """Apply or keep a batch, all or nothing; committed when this returns."""
        now = self.clock.now()

        async def body(uow: UnitOfWork) -> ReceiptOutcome:
            first = await uow.receipts.add(receipts)
            fresh = [r for r, new in zip(receipts, first, strict=True) if new]
            outcome = await apply_receipts(uow, fresh, self.policy, now)
            outcome.duplicates.extend(r for r, new in zip(receipts, first, strict=True)
                                      if not new)
            if outcome.refunds:
                await uow.ledger.credit_many(outcome.refunds)
            await uow.commit()
            return outcome

        outcome = await in_transaction(self.uow, body) if receipts else ReceiptOutcome()
        report(self.telemetry, outcome)
        return ReceiptCounts(len(outcome.applied), len(outcome.kept), len(outcome.duplicates))

    async def expire_orphans(self) -> int:
        """Drop the kept receipts older than the orphan time (one pass, at most
        `orphans_per_pass`); logged once each pass, counted per operator."""
        before = self.clock.now() - self.policy.orphan_ttl

        async def body(uow: UnitOfWork) -> list[Receipt]:
            gone = await uow.receipts.expire(before, self.orphans_per_pass)
            await uow.commit()
            return gone

        gone = await in_transaction(self.uow, body)
        if gone:
            per_operator: dict[str, int] = {}
            for receipt in gone:
                per_operator[receipt.about.operator] = per_operator.get(
                    receipt.about.operator, 0) + 1
            for operator, count in per_operator.items():
                self.telemetry.receipt_orphans(operator, count)
            log.info("receipts for no known message dropped after the orphan time", extra={
                "orphans": len(gone), "operators": per_operator,
                "message_ids": [r.about.message_id for r in gone[:10]],
            })
        return len(gone)


def report(telemetry: Telemetry, outcome: ReceiptOutcome) -> None:
    """The figures of receipts whose effect is committed."""
    for receipt, seconds in outcome.applied:
        telemetry.receipt_applied(receipt.about.operator, receipt.reported, seconds)
    for receipt in outcome.kept:
        telemetry.receipt_unmatched(receipt.about.operator, "kept")
    for receipt in outcome.duplicates:
        telemetry.receipt_unmatched(receipt.about.operator, "duplicate")
    refunded = sum(tx.amount for tx in outcome.refunds)
    if outcome.refunds:
        telemetry.ledger(TransactionType.REFUND, refunded, len(outcome.refunds))
