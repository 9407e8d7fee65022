"""Deliver one accepted SMS: claim its recipients, send each, settle the outcome.

Idempotent, so the bus may deliver a message more than once: a recipient is
claimed only when PENDING, or SENDING past its lease (the delivery that claimed
it is taken to be lost), so a duplicate of a message in progress claims nothing;
an outcome is recorded only by the move out of SENDING, and the refund sits in
the same transaction as that move, keyed by (sms, recipient), so it happens at
most once and only for a FAILED recipient. A crash before the outcome commits
leaves the recipient SENDING; once its lease lapses, a redelivered message
claims it again and sends once more (at-least-once towards operators, with a
stable reference per recipient they can use to drop the duplicate).

A recipient no operator could take now (all down, timing out, or behind open
circuits) is not failed: it goes back to PENDING and its SMS is published
again later. Only an operator's permanent refusal, or the SMS's validity
running out, fails a recipient (and refunds it).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from smsgw_core.failover import FailoverResult, send_with_failover
from smsgw_core.fairness import FairGate
from smsgw_core.ledger import TransactionType
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.operators import OutgoingSms
from smsgw_core.outbox import DeliveryJob
from smsgw_core.ports import CircuitBreaker, Clock, Operator, UnitOfWork, UnitOfWorkFactory
from smsgw_core.receipts import ReceiptPolicy
from smsgw_core.routing import Routes
from smsgw_core.services.coalesce import Coalescer
from smsgw_core.services.receipts import report as report_receipts
from smsgw_core.services.settle import Settled, Settlement, Verdict, settle
from smsgw_core.telemetry import NoTelemetry, Telemetry
from smsgw_core.transactions import in_transaction
from smsgw_core.validity import DeliveryPolicy, FailureReason

log = logging.getLogger("smsgw.deliver")
_UNGATED: AbstractAsyncContextManager[object] = nullcontext()  # a lone recipient's send


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    """What became of one delivery's recipients, counted."""

    done: int
    failed: int
    skipped: int  # already terminal, in progress elsewhere, or deferred
    deferred: int = 0  # back to PENDING: no operator could take them now


@dataclass(frozen=True, slots=True)
class _Sent:
    delivery: DeliveryJob
    outcomes: list[tuple[str, FailoverResult | None]]  # per claimed recipient; None: not sent


def _verdict(
    recipient: str, outcome: FailoverResult | None, expired: bool
) -> Verdict:
    if outcome is not None and outcome.delivered:
        return Verdict(recipient, SmsStatus.DONE, outcome.provider,
                       message_id=outcome.provider_message_id)
    if outcome is not None and not outcome.retryable:
        return Verdict(recipient, SmsStatus.FAILED, reason=FailureReason.REJECTED)
    if expired:
        return Verdict(recipient, SmsStatus.FAILED, reason=FailureReason.EXPIRED)
    return Verdict(recipient, SmsStatus.PENDING)


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
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    max_parallel: int = 50  # operator calls in flight for one message
    # Operator calls in flight for all messages of a type. Normal calls beyond it
    # wait here, not in the HTTP client's pool where express calls would queue
    # behind them: a 100,000-recipient backlog must not delay an express message.
    # They wait in turns across customers (FairGate), not first come first served.
    max_calls: int = 256
    telemetry: Telemetry = field(default_factory=NoTelemetry)
    # Receipts kept for an operator message id are applied when the answer naming it
    # is recorded (None: the gateway takes no receipts, none are looked for).
    receipts: ReceiptPolicy | None = field(default_factory=ReceiptPolicy)
    # Which operators may take a recipient, by its number (None: all, in order).
    routes: Routes | None = None
    # A claim names the SMS and the recipients of this delivery (all or a part of them).
    _claims: dict[MessageType, Coalescer[tuple[str, tuple[str, ...]], list[str]]] = field(
        init=False, repr=False)
    _outcomes: dict[MessageType, Coalescer[_Sent, DeliveryCounts]] = field(
        init=False, repr=False
    )
    _calls: dict[MessageType, FairGate] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Groups per message type: an express message never waits for a slot
        # behind a group of normal ones.
        self._claims = {kind: Coalescer(self._claim_group) for kind in MessageType}
        self._outcomes = {kind: Coalescer(self._record_group) for kind in MessageType}
        self._calls = {kind: FairGate(self.max_calls) for kind in MessageType}
        self._by_name = {operator.name: operator for operator in self.operators}
        self._routed: dict[tuple[str, ...], list[Operator]] = {}

    async def deliver(self, delivery: DeliveryJob) -> DeliveryCounts:
        claimed = await self._claims[delivery.type].submit(
            (delivery.sms_identifier, delivery.recipients))
        if not claimed:
            return DeliveryCounts(0, 0, len(delivery.recipients))
        outcomes: list[FailoverResult | None]
        if self.policy.expired(delivery.accepted_at, self.clock.now()):
            outcomes = [None] * len(claimed)  # too late to send: each fails as expired
        elif len(claimed) == 1:
            # One recipient (most SMS): no gate and no task of its own to pay for.
            try:
                outcomes = [await self._send(delivery, claimed[0])]
            except asyncio.CancelledError:
                await asyncio.shield(self._hand_back(delivery, claimed, []))
                raise
        else:
            gate = asyncio.Semaphore(self.max_parallel)
            sends = [asyncio.ensure_future(self._send(delivery, r, gate)) for r in claimed]
            try:
                outcomes = list(await asyncio.gather(*sends))
            except asyncio.CancelledError:
                # A stop (SIGTERM) cut the delivery short: shielded, so the hand-back
                # runs to its end while the stop waits for this task.
                await asyncio.shield(self._hand_back(delivery, claimed, sends))
                raise
        sent = _Sent(delivery, list(zip(claimed, outcomes, strict=True)))
        return await self._outcomes[delivery.type].submit(sent)

    async def _hand_back(
        self,
        delivery: DeliveryJob,
        claimed: list[str],
        sends: Sequence[asyncio.Future[FailoverResult]],
    ) -> None:
        """Settle what the operators answered; put the rest back to PENDING, due now.

        Without this the rest would wait out their lease before another worker
        took them. A send cut off mid-call may have reached the operator: handing
        it back may send it twice (at-least-once, as after a crash).
        """
        now = self.clock.now()
        verdicts = []
        for recipient, send in itertools.zip_longest(claimed, sends):  # no sends: none answered
            answered = (send is not None and send.done() and not send.cancelled()
                        and send.exception() is None)
            verdicts.append(_verdict(recipient, send.result(), expired=False) if answered
                            else Verdict(recipient, SmsStatus.PENDING))
        settlement = Settlement(delivery, verdicts, retry_at=now)

        async def record(uow: UnitOfWork) -> Settled:
            settled = await settle(uow, [settlement], now, self.receipts)
            await uow.commit()
            return settled

        try:
            settled = await in_transaction(self.uow, record)
        except Exception:  # the lease brings them back instead
            log.exception("could not hand back %s", delivery.sms_identifier)
            return
        [applied] = settled.verdicts
        self._report(delivery, [v.status for v in applied if v.status.terminal], now)
        report_receipts(self.telemetry, settled.receipts)

    async def _send(
        self, delivery: DeliveryJob, recipient: str,
        gate: AbstractAsyncContextManager[object] = _UNGATED,
    ) -> FailoverResult:
        accepted = delivery.accepted_at
        sms = OutgoingSms(recipient, delivery.text, f"{delivery.sms_identifier}:{recipient}",
                          accepted + self.policy.validity if accepted is not None else None)
        operators = self._operators_for(recipient)
        if operators is None:  # the routes changed since it was accepted: none will take it
            return FailoverResult(False, "", "", ("no route serves this number",))
        async with gate, self._calls[delivery.type].slot(delivery.customer_id):
            return await send_with_failover(sms, operators, self.breaker)

    def _operators_for(self, recipient: str) -> Sequence[Operator] | None:
        if self.routes is None:
            return self.operators
        names = self.routes.operators_for(recipient)
        if names is None:
            return None
        operators = self._routed.get(names)
        if operators is None:
            operators = self._routed[names] = [self._by_name[n] for n in names
                                               if n in self._by_name]
        return operators

    async def _claim_group(
        self, deliveries: Sequence[tuple[str, tuple[str, ...]]],
    ) -> list[list[str]]:
        now = self.clock.now()
        wanted: dict[str, set[str]] = {}
        for sms, recipients in deliveries:
            wanted.setdefault(sms, set()).update(recipients)

        async def claim(uow: UnitOfWork) -> dict[str, list[str]]:
            claimed = await uow.messages.claim_many(
                list(wanted), now, self.policy.stale_before(now), only=wanted,
            )
            await uow.commit()
            return claimed

        claimed = await in_transaction(self.uow, claim)  # a deadlock is re-run, not raised
        # Each delivery gets its own recipients; the same part twice in one group (the
        # bus delivered it twice at once): the first sends, the other has nothing to do.
        given = {sms: set(recipients) for sms, recipients in claimed.items()}
        answers = []
        for sms, recipients in deliveries:
            mine = [r for r in recipients if r in given.get(sms, ())]
            given.get(sms, set()).difference_update(mine)
            answers.append(mine)
        return answers

    async def _record_group(self, group: Sequence[_Sent]) -> list[DeliveryCounts]:
        now = self.clock.now()
        settlements = []
        for sent in group:
            accepted = sent.delivery.accepted_at
            expired = self.policy.expired(accepted, now)
            verdicts = [_verdict(r, outcome, expired) for r, outcome in sent.outcomes]
            settlements.append(Settlement(sent.delivery, verdicts,
                                          self.policy.retry_at(accepted, now)))

        async def record(uow: UnitOfWork) -> Settled:
            settled = await settle(uow, settlements, now, self.receipts)
            await uow.commit()
            return settled

        # Re-run whole on a deadlock: raising would leave the recipients SENDING, and
        # the operators would get them again once their lease lapsed.
        settled = await in_transaction(self.uow, record)
        report_receipts(self.telemetry, settled.receipts)
        reports = []
        for sent, verdicts in zip(group, settled.verdicts, strict=True):
            self._log_failures(sent, verdicts)
            statuses = [v.status for v in verdicts]
            self._report(sent.delivery, [s for s in statuses if s.terminal], now)
            done, failed = statuses.count(SmsStatus.DONE), statuses.count(SmsStatus.FAILED)
            reports.append(DeliveryCounts(
                done, failed, len(sent.delivery.recipients) - done - failed,
                statuses.count(SmsStatus.PENDING),
            ))
        return reports

    def _log_failures(self, sent: _Sent, applied: list[Verdict]) -> None:
        """What a customer's refund does not say (operators' errors, hosts) goes here."""
        errors = {recipient: o.errors for recipient, o in sent.outcomes if o is not None}
        sms = sent.delivery.sms_identifier
        for v in applied:
            if v.status is SmsStatus.FAILED:
                log.warning("recipient failed", extra={
                    "sms_identifier": sms, "recipient": v.recipient,
                    "reason": v.reason.value if v.reason else "",
                    "errors": "; ".join(errors.get(v.recipient, ()))[:1000],
                })
        deferred = [v.recipient for v in applied if v.status is SmsStatus.PENDING]
        if deferred:  # one line per SMS: an outage must not flood the logs
            first = errors.get(deferred[0], ())
            log.warning("no operator available; recipients deferred", extra={
                "sms_identifier": sms, "recipients": len(deferred),
                "errors": "; ".join(first)[:1000],
            })

    def _report(self, delivery: DeliveryJob, finished: list[SmsStatus], now: datetime) -> None:
        accepted = delivery.accepted_at
        seconds = (now - accepted).total_seconds() if accepted is not None else None
        for status in finished:
            self.telemetry.finished(delivery.type, status, seconds)
        refunds = sum(1 for s in finished if s is SmsStatus.FAILED) if delivery.unit_share else 0
        if refunds:
            self.telemetry.ledger(TransactionType.REFUND, refunds * delivery.unit_share, refunds)
