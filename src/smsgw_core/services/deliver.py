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
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.operators import OutgoingSms
from smsgw_core.outbox import Delivery
from smsgw_core.ports import CircuitBreaker, Clock, Operator, Outcome, UnitOfWorkFactory
from smsgw_core.services.coalesce import Coalescer
from smsgw_core.telemetry import NoTelemetry, Telemetry


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    done: int
    failed: int
    skipped: int  # already terminal, or finished by a concurrent delivery


@dataclass(frozen=True, slots=True)
class _Sent:
    delivery: Delivery
    outcomes: list[tuple[str, SendOutcome]]  # per claimed recipient


def _status(outcome: SendOutcome) -> SmsStatus:
    return SmsStatus.DONE if outcome.delivered else SmsStatus.FAILED


@dataclass
class Deliverer:
    """Delivers one SMS per `deliver` call; concurrent calls share their transactions.

    The claims of messages being delivered at the same time go to the database
    as one transaction, and so do their outcomes (with the refunds): the
    operator calls in between stay each message's own, so a slow operator
    holds up only the messages it serves.
    """

    uow: UnitOfWorkFactory
    clock: Clock
    operators: Sequence[Operator]
    breaker: CircuitBreaker
    max_parallel: int = 50  # operator calls in flight for one message
    # Operator calls in flight for all messages of a type. Normal calls beyond it
    # wait here, not in the HTTP client's pool where express calls would queue
    # behind them: a 100,000-recipient backlog must not delay an express message.
    max_calls: int = 256
    telemetry: Telemetry = field(default_factory=NoTelemetry)
    _claims: dict[MessageType, Coalescer[str, list[str]]] = field(init=False, repr=False)
    _outcomes: dict[MessageType, Coalescer[_Sent, DeliveryReport]] = field(
        init=False, repr=False
    )
    _calls: dict[MessageType, asyncio.Semaphore] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Groups per message type: an express message never waits for a slot
        # behind a group of normal ones.
        self._claims = {kind: Coalescer(self._claim_group) for kind in MessageType}
        self._outcomes = {kind: Coalescer(self._record_group) for kind in MessageType}
        self._calls = {kind: asyncio.Semaphore(self.max_calls) for kind in MessageType}

    async def deliver(self, delivery: Delivery) -> DeliveryReport:
        claimed = await self._claims[delivery.type].submit(delivery.sms_identifier)
        if not claimed:
            return DeliveryReport(0, 0, len(delivery.recipients))
        gate = asyncio.Semaphore(self.max_parallel)
        outcomes = await asyncio.gather(*(self._send(delivery, r, gate) for r in claimed))
        sent = _Sent(delivery, list(zip(claimed, outcomes, strict=True)))
        return await self._outcomes[delivery.type].submit(sent)

    async def _send(
        self, delivery: Delivery, recipient: str, gate: asyncio.Semaphore
    ) -> SendOutcome:
        sms = OutgoingSms(recipient, delivery.text, f"{delivery.sms_identifier}:{recipient}")
        async with gate, self._calls[delivery.type]:
            return await send_with_failover(sms, self.operators, self.breaker)

    async def _claim_group(self, sms_identifiers: Sequence[str]) -> list[list[str]]:
        async with self.uow() as uow:
            claimed = await uow.messages.claim_many(sms_identifiers, self.clock.now())
            await uow.commit()
        # The same SMS twice in one group (the bus delivered it twice at once):
        # the first delivery sends, the other finds nothing to do.
        return [claimed.pop(sms, []) for sms in sms_identifiers]

    async def _record_group(self, group: Sequence[_Sent]) -> list[DeliveryReport]:
        now = self.clock.now()
        outcomes = [
            Outcome(sent.delivery.sms_identifier, recipient, _status(outcome), outcome.provider)
            for sent in group for recipient, outcome in sent.outcomes
        ]
        finished: list[list[SmsStatus]] = []
        async with self.uow() as uow:
            moved = iter(await uow.messages.finish_many(outcomes, now))
            for sent in group:
                statuses = []
                for recipient, outcome in sent.outcomes:
                    if not next(moved):  # finished by a concurrent delivery
                        continue
                    statuses.append(_status(outcome))
                    if not outcome.delivered and sent.delivery.unit_share > 0:
                        await uow.ledger.apply(_refund(sent.delivery, recipient, outcome, now))
                finished.append(statuses)
            await uow.commit()
        reports = []
        for sent, statuses in zip(group, finished, strict=True):
            self._report(sent.delivery, statuses, now)
            done, failed = statuses.count(SmsStatus.DONE), statuses.count(SmsStatus.FAILED)
            reports.append(DeliveryReport(done, failed,
                                          len(sent.delivery.recipients) - done - failed))
        return reports

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
