"""Builders for the receipt contract: SMS accepted, claimed and answered through the
real use cases (settle, ReceiptIntake) on a backend, and the same script run on
ReceiptDesk, the rule's pure reference, side by side (`Twin`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contract_helpers import T0, messages

from smsgw_core.ledger import Transaction, TransactionType, charge_id, refund_id
from smsgw_core.messages import MessageType, RecipientMessage, SmsStatus
from smsgw_core.outbox import DeliveryJob
from smsgw_core.ports import HistoryFilter, UnitOfWork, UnitOfWorkFactory
from smsgw_core.receipts import (
    Applied,
    OperatorMessage,
    Receipt,
    ReceiptDesk,
    ReceiptPolicy,
    Reported,
    Tracked,
)
from smsgw_core.services.receipts import ReceiptCounts, ReceiptIntake
from smsgw_core.services.settle import Settled, Settlement, settle
from smsgw_core.services.settle import Verdict as Outcome
from smsgw_core.testing import FakeClock
from smsgw_core.transactions import in_transaction
from smsgw_core.validity import FailureReason

OP = "op-a"
TTL = timedelta(seconds=60)
RECEIPT_STATUSES = frozenset({SmsStatus.DELIVERED, SmsStatus.UNDELIVERED, SmsStatus.EXPIRED})


def receipt(
    message_id: str, reported: Reported, received_at: datetime, *, error_code: str = "",
    done_at: datetime | None = None, operator: str = OP,
) -> Receipt:
    return Receipt(OperatorMessage(operator, message_id), reported, error_code, done_at,
                   received_at)


def done(recipient: str, message_id: str, operator: str = OP) -> Outcome:
    return Outcome(recipient, SmsStatus.DONE, operator, message_id=message_id)


def failed(recipient: str) -> Outcome:
    return Outcome(recipient, SmsStatus.FAILED, reason=FailureReason.REJECTED)


@dataclass
class Gateway:
    """One customer's SMS on a backend, driven through the use cases."""

    uow: UnitOfWorkFactory
    policy: ReceiptPolicy
    customer: int = 1
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0))
    intake: ReceiptIntake = field(init=False)

    def __post_init__(self) -> None:
        self.intake = ReceiptIntake(self.uow, self.clock, self.policy)

    def now(self) -> datetime:
        return self.clock.now()

    def wait(self, seconds: float) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    async def top_up(self, amount: int) -> None:
        async def body(uow: UnitOfWork) -> None:
            await uow.ledger.apply(Transaction(
                f"topup:{self.customer}:{amount}:{self.now().isoformat()}", self.customer,
                amount, TransactionType.TOPUP, "top-up", self.now()))
            await uow.commit()

        await in_transaction(self.uow, body)

    async def accept(self, sms: str, recipients: Iterable[str], share: int) -> DeliveryJob:
        """Accepted (rows and charge, one transaction, as SmsSender writes them) and
        claimed: every recipient SENDING, ready for its answer."""
        recipients = tuple(recipients)
        now = self.now()

        async def body(uow: UnitOfWork) -> None:
            await uow.messages.add(messages(sms, self.customer, *recipients, when=now))
            await uow.ledger.apply(Transaction(
                charge_id(sms), self.customer, -share * len(recipients),
                TransactionType.CHARGE, f"sms {sms}", now))
            await uow.commit()
            assert (await uow.messages.claim_many([sms], now)) == {sms: list(recipients)}
            await uow.commit()

        await in_transaction(self.uow, body)
        return DeliveryJob(sms, self.customer, MessageType.NORMAL, f"hello {sms}", recipients,
                           share, now)

    async def answer(self, delivery: DeliveryJob, *outcomes: Outcome) -> Settled:
        """The operator's answers recorded, as the deliverer records them."""
        now = self.now()

        async def body(uow: UnitOfWork) -> Settled:
            settled = await settle(uow, [Settlement(delivery, outcomes)], now, self.policy)
            await uow.commit()
            return settled

        return await in_transaction(self.uow, body)

    async def take(self, *receipts: Receipt) -> ReceiptCounts:
        return await self.intake.take(list(receipts))

    async def expire(self) -> int:
        return await self.intake.expire_orphans()

    async def recipients(self) -> dict[tuple[str, str], RecipientMessage]:
        async with self.uow() as uow:
            rows = await uow.messages.history(HistoryFilter(self.customer), 10_000, None)
        return {(m.sms_identifier, m.recipient): m for _, m in rows}

    async def status(self, sms: str, recipient: str) -> SmsStatus:
        return (await self.recipients())[(sms, recipient)].status

    async def ledger(self) -> tuple[int | None, list[Transaction]]:
        async with self.uow() as uow:
            balance = await uow.ledger.balance(self.customer)
            rows = await uow.ledger.transactions(self.customer, 10_000, None)
        return balance, [tx for _, tx in rows]

    async def refunds(self) -> dict[str, Transaction]:
        """Every refund by its id; also that the balance is the sum of the ledger and
        no refund id appears twice."""
        balance, transactions = await self.ledger()
        assert balance == sum(tx.amount for tx in transactions)
        refunds = [tx for tx in transactions if tx.type is TransactionType.REFUND]
        by_id = {tx.transaction_id: tx for tx in refunds}
        assert len(by_id) == len(refunds), "a refund paid twice"
        return by_id

    async def waiting(self, about: Iterable[OperatorMessage]) -> dict[OperatorMessage, Receipt]:
        """The receipt rows stored for these ids (kept, or the record of the applied one)."""
        async with self.uow() as uow:
            found = await uow.receipts.waiting(list(dict.fromkeys(about)))
        return {r.about: r for r in found}


@dataclass
class Twin:
    """One script on a backend (through `Gateway`) and on ReceiptDesk, step by step;
    `check` holds the backend's state to what the desk says."""

    gateway: Gateway
    desk: ReceiptDesk = field(init=False)
    shares: dict[str, int] = field(default_factory=dict)  # by sms
    answered: dict[tuple[str, str], str] = field(default_factory=dict)  # -> message id
    failures: set[tuple[str, str]] = field(default_factory=set)
    desk_refunds: Counter[tuple[str, str]] = field(default_factory=Counter)
    applied: int = 0  # by the backend: intake and settle
    applied_by_answers: int = 0  # of which kept receipts an answer applied
    duplicates: int = 0  # counted by the intake
    orphans: int = 0  # counted by the backend
    desk_orphans: int = 0  # distinct ids the desk dropped
    ids: set[OperatorMessage] = field(default_factory=set)  # every id a receipt named
    on_record: set[OperatorMessage] = field(default_factory=set)  # ids with a receipt stored

    def __post_init__(self) -> None:
        policy = self.gateway.policy
        self.desk = ReceiptDesk(policy.refund_undelivered, policy.orphan_ttl)

    async def accept(self, sms: str, recipients: Iterable[str], share: int) -> DeliveryJob:
        self.shares[sms] = share
        return await self.gateway.accept(sms, recipients, share)

    async def done(self, delivery: DeliveryJob, recipient: str, message_id: str,
                   ) -> Settled | None:
        """The answer DONE with `message_id`: what it settled, None if it moved nothing."""
        settled = await self.gateway.answer(delivery, done(recipient, message_id))
        [moved] = settled.verdicts
        self.applied += len(settled.receipts.applied)
        self.applied_by_answers += len(settled.receipts.applied)
        if not moved:
            assert not settled.receipts.applied
            return None
        key = (delivery.sms_identifier, recipient)
        self.answered[key] = message_id
        desk_moved = self.desk.answered(Tracked(*key, OperatorMessage(OP, message_id)))
        self._desk_applied(desk_moved)
        assert len(settled.receipts.applied) == len(desk_moved)
        assert [r.reported for r, _ in settled.receipts.applied] == [
            a.recipient.reported for a in desk_moved]
        return settled

    async def fail(self, delivery: DeliveryJob, recipient: str) -> bool:
        [moved] = (await self.gateway.answer(delivery, failed(recipient))).verdicts
        if moved:
            self.failures.add((delivery.sms_identifier, recipient))
        return bool(moved)

    async def receive(self, *receipts: Receipt) -> ReceiptCounts:
        counts = await self.gateway.take(*receipts)
        # The storage's count: the first receipt for an id applies (its recipient is
        # answered) or is kept; any other, in this batch or since, is a duplicate.
        expected = Counter[str]()
        for r in receipts:
            expected["duplicates" if r.about in self.on_record else
                     "applied" if r.about in self.desk.tracked else "kept"] += 1
            self.on_record.add(r.about)
        assert counts == ReceiptCounts(
            expected["applied"], expected["kept"], expected["duplicates"]), counts
        self.applied += counts.applied
        self.duplicates += counts.duplicates
        for r in receipts:
            self.ids.add(r.about)
            _, moved = self.desk.receive(r)
            self._desk_applied([moved] if moved is not None else [])
        return counts

    async def expire(self) -> int:
        gone = await self.gateway.expire()
        self.orphans += gone
        dropped = {r.about for r in self.desk.expire(self.gateway.now())}
        self.desk_orphans += len(dropped)
        self.on_record -= dropped
        return gone

    def _desk_applied(self, moved: Iterable[Applied]) -> None:
        for applied in moved:
            t = applied.recipient
            if applied.refund:
                self.desk_refunds[(t.sms_identifier, t.recipient)] += 1

    async def check(self) -> None:
        """The backend's final state is the desk's: statuses, receipt details, refunds,
        counts, and the receipts still kept."""
        rows = await self.gateway.recipients()
        final = 0
        for key, row in rows.items():
            if key in self.failures:
                assert row.status is SmsStatus.FAILED, key
            elif key in self.answered:
                message = OperatorMessage(OP, self.answered[key])
                t = self.desk.tracked[message]
                assert row.message_id == message.message_id
                if t.reported is None:
                    assert (row.status, row.error_code, row.delivered_at) == (
                        SmsStatus.DONE, "", None), key
                else:
                    final += 1
                    assert (row.status, row.error_code, row.delivered_at) == (
                        t.reported.status, t.error_code, t.done_at), key
            else:
                assert row.status is SmsStatus.SENDING, key
        assert self.applied == final
        assert self.orphans == self.desk_orphans
        # Each refund once: the failed ones (undeliverable) and those the desk says.
        assert all(n == 1 for n in self.desk_refunds.values()), self.desk_refunds
        refunds = await self.gateway.refunds()
        expected = {refund_id(*key) for key in self.failures | set(self.desk_refunds)}
        assert set(refunds) == expected
        for key in self.desk_refunds:
            tx = refunds[refund_id(*key)]
            t = self.desk.tracked[OperatorMessage(OP, self.answered[key])]
            assert t.reported is not None
            assert tx.amount == self.shares[key[0]]
            assert f"{key[1]} {t.reported.value} (receipt from {OP}" in tx.description
        for key in self.failures:
            assert "undeliverable" in refunds[refund_id(*key)].description
        # Nothing lost: what the desk keeps is stored, the first of each id, and the
        # receipt a recipient's status came from is the one on record.
        stored = await self.gateway.waiting(self.ids | set(self.desk.tracked))
        for message, t in self.desk.tracked.items():
            if t.reported is None:
                assert message not in stored
            else:
                assert stored[message].reported is t.reported
        unmatched = {m: r for m, r in stored.items() if m not in self.desk.tracked}
        assert unmatched == {m: kept[0] for m, kept in self.desk.kept.items()}
