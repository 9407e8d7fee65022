"""Deliver one accepted SMS: claim its recipients, send each, record the outcome.

Idempotent, so the bus may deliver a message more than once: terminal recipients
are never claimed again, a recipient's outcome is recorded only by the move out
of SENDING, and its refund sits in the same transaction as that move, keyed by
(sms, recipient), so it happens at most once and only for a FAILED recipient.
A crash before the outcome commits leaves the recipient SENDING; the redelivered
message claims it again and sends once more (at-least-once towards operators,
with a stable reference per recipient they can use to drop the duplicate).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from smsgw_core.failover import SendOutcome, send_with_failover
from smsgw_core.ledger import Transaction, TransactionType, refund_id
from smsgw_core.messages import SmsStatus
from smsgw_core.operators import OutgoingSms
from smsgw_core.outbox import Delivery
from smsgw_core.ports import CircuitBreaker, Clock, Operator, UnitOfWorkFactory
from smsgw_core.telemetry import NoTelemetry, Telemetry


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    done: int
    failed: int
    skipped: int  # already terminal, or finished by a concurrent delivery


@dataclass
class Deliverer:
    uow: UnitOfWorkFactory
    clock: Clock
    operators: Sequence[Operator]
    breaker: CircuitBreaker
    max_parallel: int = 50  # operator calls in flight for one message
    telemetry: Telemetry = field(default_factory=NoTelemetry)

    async def deliver(self, delivery: Delivery) -> DeliveryReport:
        async with self.uow() as uow:
            claimed = await uow.messages.claim(delivery.sms_identifier, self.clock.now())
            await uow.commit()
        if not claimed:
            return DeliveryReport(0, 0, len(delivery.recipients))
        gate = asyncio.Semaphore(self.max_parallel)
        outcomes = await asyncio.gather(*(self._send(delivery, r, gate) for r in claimed))
        return await self._record(delivery, list(zip(claimed, outcomes, strict=True)))

    async def _send(
        self, delivery: Delivery, recipient: str, gate: asyncio.Semaphore
    ) -> SendOutcome:
        sms = OutgoingSms(recipient, delivery.text, f"{delivery.sms_identifier}:{recipient}")
        async with gate:
            return await send_with_failover(sms, self.operators, self.breaker)

    async def _record(
        self, delivery: Delivery, outcomes: list[tuple[str, SendOutcome]]
    ) -> DeliveryReport:
        done = failed = skipped = 0
        now = self.clock.now()
        finished: list[SmsStatus] = []
        async with self.uow() as uow:
            for recipient, outcome in outcomes:
                status = SmsStatus.DONE if outcome.delivered else SmsStatus.FAILED
                moved = await uow.messages.finish(
                    delivery.sms_identifier, recipient, status, outcome.provider, now
                )
                if not moved:
                    skipped += 1
                elif outcome.delivered:
                    done += 1
                    finished.append(status)
                else:
                    failed += 1
                    finished.append(status)
                    if delivery.unit_share > 0:
                        await uow.ledger.apply(_refund(delivery, recipient, outcome, now))
            await uow.commit()
        self._report(delivery, finished, now)
        return DeliveryReport(done, failed, skipped + len(delivery.recipients) - len(outcomes))

    def _report(self, delivery: Delivery, finished: list[SmsStatus], now: datetime) -> None:
        accepted = delivery.accepted_at
        seconds = (now - accepted).total_seconds() if accepted is not None else None
        for status in finished:
            self.telemetry.finished(delivery.type, status, seconds)
        refunds = sum(1 for s in finished if s is SmsStatus.FAILED) if delivery.unit_share else 0
        if refunds:
            self.telemetry.ledger(TransactionType.REFUND, refunds * delivery.unit_share, refunds)


def _refund(delivery: Delivery, recipient: str, outcome: SendOutcome, at: datetime) -> Transaction:
    reason = "; ".join(outcome.errors)
    return Transaction(
        refund_id(delivery.sms_identifier, recipient), delivery.user_id, delivery.unit_share,
        TransactionType.REFUND, f"refund: {recipient} undeliverable ({reason})"[:255], at,
    )
