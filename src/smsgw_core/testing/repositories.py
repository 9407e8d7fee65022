"""In-memory repositories: they raise the same domain errors as the SQL ones."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from smsgw_core.errors import (
    DuplicateIdempotencyKey,
    DuplicateTransaction,
    InsufficientBalance,
    InvalidTransition,
)
from smsgw_core.fairness import Waiting
from smsgw_core.ledger import Transaction, TransactionType, charge_id, refused_charges
from smsgw_core.messages import RecipientMessage, SmsStatus, check_transition
from smsgw_core.outbox import DeliveryJob, OutboxEvent, UndecodablePayload
from smsgw_core.ports import (
    Backlog,
    HistoryFilter,
    ParkedEvent,
    Reached,
    RecipientFinish,
    StoredResponse,
)
from smsgw_core.receipts import OperatorMessage, Receipt
from smsgw_core.testing.state import InMemoryState, OutboxRow

if TYPE_CHECKING:
    from smsgw_core.testing.uow import InMemoryUnitOfWork


class _Repo:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    @property
    def s(self) -> InMemoryState:
        state = self._uow.working
        if state is None:
            raise RuntimeError("unit of work used outside `async with`")
        return state


class InMemoryLedger(_Repo):
    async def apply(self, tx: Transaction) -> None:
        if any(t.transaction_id == tx.transaction_id for _, t in self.s.transactions):
            raise DuplicateTransaction(tx.transaction_id)
        current = self.s.balances.get(tx.customer_id)
        if tx.amount <= 0 and (current is None or current + tx.amount < 0):
            raise InsufficientBalance(tx.customer_id, -tx.amount)
        self.s.balances[tx.customer_id] = (current or 0) + tx.amount
        self.s.transactions.append((self.s.take_id(), tx))

    async def debit_many(self, charges: Sequence[Transaction]) -> list[int]:
        known = {t.transaction_id for _, t in self.s.transactions}
        for tx in charges:
            if tx.transaction_id in known:
                await self._uow.rollback()  # as the port says: the whole unit of work
                raise DuplicateTransaction(tx.transaction_id)
        refused = refused_charges(charges, self.s.balances)
        if refused:
            await self._uow.rollback()
            return refused
        for tx in charges:
            self.s.balances[tx.customer_id] += tx.amount
            self.s.transactions.append((self.s.take_id(), tx))
        return refused

    async def credit_many(self, credits: Sequence[Transaction]) -> None:
        for tx in credits:
            if tx.amount <= 0:
                raise ValueError(f"credit {tx.transaction_id} does not add money")
        known = {t.transaction_id for _, t in self.s.transactions}
        for tx in credits:
            if tx.transaction_id in known:
                raise DuplicateTransaction(tx.transaction_id)
            known.add(tx.transaction_id)
        for tx in credits:
            self.s.balances[tx.customer_id] = self.s.balances.get(tx.customer_id, 0) + tx.amount
            self.s.transactions.append((self.s.take_id(), tx))

    async def balance(self, customer_id: int) -> int | None:
        return self.s.balances.get(customer_id)

    async def transactions(
        self, customer_id: int, limit: int, before: int | None
    ) -> list[tuple[int, Transaction]]:
        rows = [
            (i, t) for i, t in reversed(self.s.transactions)
            if t.customer_id == customer_id and (before is None or i < before)
        ]
        return rows[:limit]


class InMemoryMessages(_Repo):
    async def add(self, messages: Sequence[RecipientMessage]) -> None:
        keys = {(m.sms_identifier, m.recipient) for _, m in self.s.messages}
        for m in messages:
            if (m.sms_identifier, m.recipient) in keys:
                raise ValueError(f"duplicate recipient {m.recipient} in {m.sms_identifier}")
            keys.add((m.sms_identifier, m.recipient))
            self.s.messages.append((self.s.take_id(), m))

    async def claim_many(
        self, sms_identifiers: Sequence[str], at: datetime, stale_before: datetime | None = None,
        only: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, list[str]]:
        wanted = set(sms_identifiers)
        claimed: dict[str, list[str]] = {}
        for index, (i, m) in enumerate(self.s.messages):
            if m.sms_identifier not in wanted or m.status.terminal:
                continue
            if only and m.sms_identifier in only and m.recipient not in only[m.sms_identifier]:
                continue
            if (m.status is SmsStatus.SENDING and stale_before is not None
                    and m.updated_at >= stale_before):
                continue  # a delivery in progress holds it
            self.s.messages[index] = (i, m.moved_to(SmsStatus.SENDING, at))
            claimed.setdefault(m.sms_identifier, []).append(m.recipient)
        return claimed

    async def finish_many(self, outcomes: Sequence[RecipientFinish], at: datetime) -> list[bool]:
        for o in outcomes:
            if o.status is SmsStatus.SENDING:
                raise InvalidTransition(SmsStatus.SENDING.value, o.status.value)
        return [self._finish(o, at) for o in outcomes]

    def _finish(self, outcome: RecipientFinish, at: datetime) -> bool:
        for index, (i, m) in enumerate(self.s.messages):
            if m.sms_identifier == outcome.sms_identifier and m.recipient == outcome.recipient:
                if m.status is not SmsStatus.SENDING:
                    return False
                self.s.messages[index] = (i, m.moved_to(
                    outcome.status, at, outcome.provider, outcome.message_id))
                return True
        return False

    async def report_many(
        self, reports: Sequence[tuple[OperatorMessage, SmsStatus]], at: datetime
    ) -> list[Reached | None]:
        for _, status in reports:  # as the SQL one: any batch naming another status
            check_transition(SmsStatus.DONE, status)
        return [self._report(about, status, at) for about, status in reports]

    def _report(self, about: OperatorMessage, status: SmsStatus, at: datetime) -> Reached | None:
        for index, (i, m) in enumerate(self.s.messages):
            if (m.provider, m.message_id) != (about.operator, about.message_id):
                continue
            if m.status is not SmsStatus.DONE:
                return Reached(m.sms_identifier, m.recipient, m.customer_id, False, m.updated_at)
            self.s.messages[index] = (i, m.moved_to(status, at))
            return Reached(m.sms_identifier, m.recipient, m.customer_id, True, m.updated_at)
        return None

    async def shares(self, sms_identifiers: Collection[str]) -> dict[str, int]:
        charged = {tx.transaction_id: -tx.amount for _, tx in self.s.transactions
                   if tx.type is TransactionType.CHARGE}
        counts: dict[str, int] = {}
        for _, m in self.s.messages:
            if m.sms_identifier in sms_identifiers:
                counts[m.sms_identifier] = counts.get(m.sms_identifier, 0) + 1
        return {sms: charged[charge_id(sms)] // n for sms, n in counts.items()
                if charge_id(sms) in charged}

    async def history(
        self, query: HistoryFilter, limit: int, before: int | None
    ) -> list[tuple[int, RecipientMessage]]:
        rows = [
            (i, self._with_receipt(m)) for i, m in reversed(self.s.messages)
            if m.customer_id == query.customer_id
            and (query.statuses() is None or m.status in (query.statuses() or ()))
            and (query.sms_identifier is None or m.sms_identifier == query.sms_identifier)
            and (before is None or i < before)
        ]
        return rows[:limit]


    def _with_receipt(self, m: RecipientMessage) -> RecipientMessage:
        receipt = self.s.receipts.get(OperatorMessage(m.provider, m.message_id))
        if receipt is None or not m.status.final:
            return m
        return replace(m, error_code=receipt.error_code,
                       delivered_at=receipt.done_at or receipt.received_at)


class InMemoryReceipts(_Repo):
    async def add(self, receipts: Sequence[Receipt]) -> list[bool]:
        first = []
        for receipt in receipts:
            first.append(receipt.about not in self.s.receipts)
            self.s.receipts.setdefault(receipt.about, receipt)
        return first

    async def waiting(self, messages: Collection[OperatorMessage]) -> list[Receipt]:
        return [r for about, r in self.s.receipts.items() if about in messages]

    async def matched(self, messages: Collection[OperatorMessage]) -> None:
        self.s.matched_receipts.update(messages)

    async def expire(self, received_before: datetime, limit: int) -> list[Receipt]:
        known = {OperatorMessage(m.provider, m.message_id) for _, m in self.s.messages
                 if m.message_id}
        gone = [r for about, r in self.s.receipts.items()
                if r.received_at < received_before and about not in known
                and about not in self.s.matched_receipts][:limit]
        for receipt in gone:
            del self.s.receipts[receipt.about]
        return gone


class InMemoryOutbox(_Repo):
    async def add(self, deliveries: Sequence[DeliveryJob], at: datetime) -> None:
        for delivery in deliveries:
            event_id = self.s.take_id()
            event = OutboxEvent(
                event_id, delivery.sms_identifier, "sms.send", delivery,
                delivery.priority, 0, at,
            )
            self.s.outbox[event_id] = OutboxRow(event, run_at=at, updated_at=at)

    async def claim_due(
        self, now: datetime, limit: int, lease_until: datetime, priority: int | None = None
    ) -> list[OutboxEvent]:
        due = [
            row for row in self.s.outbox.values()
            if row.status == "pending" and (row.run_at is None or row.run_at <= now)
            and (priority is None or row.event.priority == priority)
        ]
        due.sort(key=lambda r: (-r.event.priority, r.event.id))
        claimed = []
        for row in due[:limit]:
            row.event = replace(row.event, attempts=row.event.attempts + 1)
            row.run_at = lease_until
            claimed.append(row.event)
        return claimed

    async def waiting(
        self, now: datetime, priority: int, per_customer: int, customers: int,
        after_customer: int = -1,
    ) -> list[Waiting]:
        pending = sorted((row for row in self.s.outbox.values()
                          if row.status == "pending" and row.event.priority == priority),
                         key=lambda r: r.event.id)
        who = sorted({_customer(row.event) for row in pending})
        who = ([c for c in who if c > after_customer] + [c for c in who if c <= after_customer]
               )[:customers]
        heads: list[Waiting] = []
        for customer in who:
            due = [row.event for row in pending if _customer(row.event) == customer
                   and (row.run_at is None or row.run_at <= now)]
            heads += [Waiting(e.id, customer, _recipients(e)) for e in due[:per_customer]]
        return heads

    async def claim(
        self, event_ids: Sequence[int], now: datetime, lease_until: datetime
    ) -> list[OutboxEvent]:
        claimed = []
        for event_id in event_ids:
            row = self.s.outbox.get(event_id)
            if row is None or row.status != "pending" or (row.run_at is not None
                                                           and row.run_at > now):
                continue
            row.event = replace(row.event, attempts=row.event.attempts + 1)
            row.run_at = lease_until
            claimed.append(row.event)
        return claimed

    async def mark_published(
        self, event_ids: Sequence[int], at: datetime, leased_until: datetime | None = None
    ) -> None:
        for event_id in event_ids:
            row = self.s.outbox[event_id]
            if leased_until is not None and (row.status, row.run_at) != ("pending", leased_until):
                continue  # deferred or claimed again since: that newer state stands
            row.status, row.updated_at = "published", at
            row.event = replace(row.event, attempts=0)

    async def retry_later(self, event_id: int, error: str, run_at: datetime) -> None:
        row = self.s.outbox[event_id]
        row.run_at, row.last_error = run_at, error

    async def park(self, event_id: int, error: str, at: datetime) -> None:
        row = self.s.outbox[event_id]
        row.status, row.last_error, row.updated_at = "parked", error, at

    async def defer(self, run_at: Mapping[str, datetime], at: datetime) -> None:
        for row in self.s.outbox.values():
            if row.event.aggregate_id in run_at and row.status != "parked":
                row.status, row.run_at, row.updated_at = (
                    "pending", run_at[row.event.aggregate_id], at
                )
                row.event = replace(row.event, attempts=0)

    async def redrive(
        self,
        published_before: datetime,
        sending_before: datetime,
        now: datetime,
        quiet: Collection[int] = (),
        limit: int = 1000,
    ) -> int:
        stale = {m.sms_identifier for _, m in self.s.messages
                 if m.status is SmsStatus.SENDING and m.updated_at < sending_before}
        waiting = {m.sms_identifier for _, m in self.s.messages
                   if m.status is SmsStatus.PENDING}
        count = 0
        for row in sorted(self.s.outbox.values(), key=lambda r: r.event.id):
            if row.status != "published" or row.updated_at is None or count >= limit:
                continue
            sms = row.event.aggregate_id
            lost = sms in stale or (
                sms in waiting and row.event.priority in quiet
                and row.updated_at <= published_before
            )
            if lost:
                row.status, row.run_at, row.updated_at = "pending", now, now
                row.event = replace(row.event, attempts=0)
                count += 1
        return count

    async def parked(self, limit: int) -> list[ParkedEvent]:
        rows = sorted((r for r in self.s.outbox.values() if r.status == "parked"),
                      key=lambda r: r.event.id)
        return [
            ParkedEvent(r.event.id, r.event.aggregate_id, r.event.priority, r.event.attempts,
                        r.event.created_at, r.last_error or "")
            for r in rows[:limit]
        ]

    async def requeue(self, event_ids: Sequence[int] | None, now: datetime) -> int:
        count = 0
        for event_id, row in self.s.outbox.items():
            if row.status == "parked" and (event_ids is None or event_id in event_ids):
                row.status, row.run_at, row.updated_at = "pending", now, now
                row.event = replace(row.event, attempts=0)
                count += 1
        return count

    async def backlog(self, now: datetime) -> list[Backlog]:
        due: dict[int, list[datetime]] = {}
        failing: dict[int, int] = {}
        for row in self.s.outbox.values():
            if row.status != "pending":
                continue
            priority = row.event.priority
            if row.run_at is None or row.run_at <= now:
                due.setdefault(priority, []).append(row.event.created_at)
            if row.event.attempts >= 2:
                failing[priority] = failing.get(priority, 0) + 1
        return [
            Backlog(p, len(due.get(p, [])), min(due[p]) if p in due else None,
                    failing.get(p, 0))
            for p in sorted(set(due) | set(failing), reverse=True)
        ]

    async def purge(self, published_before: datetime, limit: int) -> int:
        unfinished = {m.sms_identifier for _, m in self.s.messages if not m.status.terminal}
        done = [
            event_id for event_id, row in sorted(self.s.outbox.items())
            if row.status == "published"
            and row.event.aggregate_id not in unfinished
            and row.updated_at is not None
            and row.updated_at <= published_before
        ][:limit]
        for event_id in done:
            del self.s.outbox[event_id]
        return len(done)

    def rows(self) -> list[OutboxRow]:
        return list(self.s.outbox.values())


class InMemoryIdempotency(_Repo):
    async def get(self, customer_id: int, key: str) -> StoredResponse | None:
        return self.s.idempotency.get((customer_id, key))

    async def add(self, customer_id: int, key: str, stored: StoredResponse, at: datetime) -> None:
        if (customer_id, key) in self.s.idempotency:
            raise DuplicateIdempotencyKey(key)
        self.s.idempotency[(customer_id, key)] = stored


def _customer(event: OutboxEvent) -> int:
    """Whose event, as the SQL outbox's user_id column has it (0 for a poison one)."""
    return 0 if isinstance(event.content, UndecodablePayload) else event.content.customer_id


def _recipients(event: OutboxEvent) -> int:
    return 1 if isinstance(event.content, UndecodablePayload) else max(
        1, len(event.content.recipients))
