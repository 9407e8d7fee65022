"""Accept an SMS: charge, record each recipient PENDING, and queue it, in one transaction.

The balance row is touched last: inserts before it take no lock on it, so the
hot row of a customer who sends most traffic is held for the shortest time.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from smsgw_core.errors import (
    DomainError,
    DuplicateIdempotencyKey,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidRequest,
)
from smsgw_core.ledger import Transaction, TransactionType, charge_id
from smsgw_core.messages import (
    MAX_TEXT_LENGTH,
    MessageType,
    RecipientMessage,
    SmsStatus,
    normalize_recipients,
)
from smsgw_core.outbox import DeliveryJob
from smsgw_core.ports import (
    Clock,
    IdGenerator,
    OutboxSignal,
    StoredResponse,
    UnitOfWork,
    UnitOfWorkFactory,
)
from smsgw_core.pricing import Tariff, quote
from smsgw_core.routing import Routes
from smsgw_core.telemetry import NoTelemetry, Telemetry
from smsgw_core.transactions import in_transaction

MAX_IDEMPOTENCY_KEY = 100


@dataclass(frozen=True, slots=True)
class SendSms:
    customer_id: int
    text: str
    recipients: tuple[str, ...]
    type: MessageType = MessageType.NORMAL
    idempotency_key: str | None = None
    trace: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def fingerprint(self) -> str:
        body = [self.customer_id, self.text, list(self.recipients), self.type.value]
        return hashlib.sha256(json.dumps(body, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Accepted:
    sms_identifier: str
    segments: int
    cost: int
    recipients: int

    def to_dict(self) -> dict[str, object]:
        return {
            "sms_identifier": self.sms_identifier,
            "segments": self.segments,
            "cost": self.cost,
            "recipients": self.recipients,
        }


class Sender(Protocol):
    """What accepts a send: the use case (SmsSender) or a decorator around it
    (GroupCommit; the API's admission gate)."""

    async def send(self, command: SendSms) -> Accepted: ...


@dataclass(frozen=True, slots=True)
class _Sale:
    accepted: Accepted
    delivery: DeliveryJob
    charge: Transaction
    rows: list[RecipientMessage]


class _NoSignal:
    def notify(self) -> None:
        return None


@dataclass
class SmsSender:
    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator
    tariff: Tariff
    signal: OutboxSignal = field(default_factory=_NoSignal)
    telemetry: Telemetry = field(default_factory=NoTelemetry)
    # A recipient no route serves is refused here, before anything is charged.
    routes: Routes | None = None

    async def send(self, command: SendSms) -> Accepted:
        key = self._check(command)
        now = self.clock.now()
        sale = self._prepare(command, now)
        if key is not None and (replay := await self._replay(command, key)) is not None:
            return replay

        async def accept(uow: UnitOfWork) -> None:
            await uow.messages.add(sale.rows)
            await uow.outbox.add([sale.delivery], now)
            if key is not None:
                stored = StoredResponse(command.fingerprint(), sale.accepted.to_dict())
                await uow.idempotency.add(command.customer_id, key, stored, now)
            await uow.ledger.apply(sale.charge)  # last: the balance row lock is held shortest
            await uow.commit()

        try:
            # Re-run whole on a deadlock: the same rows, ids and key, so at most once.
            await in_transaction(self.uow, accept)
        except DuplicateIdempotencyKey:
            # A concurrent request with the same key committed first: answer as it did.
            assert key is not None
            replay = await self._replay(command, key)
            if replay is None:
                raise
            return replay
        self.signal.notify()
        self.telemetry.ledger(TransactionType.CHARGE, sale.accepted.cost)
        return sale.accepted

    async def send_many(self, commands: Sequence[SendSms]) -> list[Accepted | DomainError]:
        """Accept many sends in one transaction: one commit, one round of locks, for all.

        Each command's answer is as `send` would give it alone: a bad request or
        a balance that does not cover it fails that command only and writes
        nothing of it. Commands with an Idempotency-Key are not taken here (their
        replay check is a read per key): send them with `send`.
        """
        results: list[Accepted | DomainError | None] = [None] * len(commands)
        now = self.clock.now()
        pending: list[tuple[int, _Sale]] = []
        for position, command in enumerate(commands):
            if command.idempotency_key is not None:
                raise ValueError("send_many takes no Idempotency-Key: use send")
            try:
                self._check(command)
                pending.append((position, self._prepare(command, now)))
            except DomainError as exc:
                results[position] = exc
        while pending:
            # A round is one transaction, re-run whole on a deadlock (it only reads
            # `pending`; the refusals are taken out after it).
            refused = await in_transaction(
                self.uow, functools.partial(self._accept_round, [sale for _, sale in pending], now)
            )
            if not refused:
                break
            # Rolled back: answer the refused ones and try again without them (each
            # round drops at least one, and a refusal is the rare path).
            for index in reversed(refused):
                position, sale = pending.pop(index)
                charge = sale.charge
                results[position] = InsufficientBalance(charge.customer_id, -charge.amount)
        if pending:
            self.signal.notify()
        for position, sale in pending:
            results[position] = sale.accepted
            self.telemetry.ledger(TransactionType.CHARGE, sale.accepted.cost)
        answers = [r for r in results if r is not None]
        assert len(answers) == len(commands), "every command is answered"
        return answers

    @staticmethod
    async def _accept_round(sales: list[_Sale], now: datetime, uow: UnitOfWork) -> list[int]:
        """Write every sale and commit, or write none: the positions the balances refuse."""
        await uow.messages.add([row for sale in sales for row in sale.rows])
        await uow.outbox.add([sale.delivery for sale in sales], now)
        # Last, as in `send`: the balance rows are locked the shortest.
        refused = await uow.ledger.debit_many([sale.charge for sale in sales])
        if not refused:
            await uow.commit()
        return refused

    def _check(self, command: SendSms) -> str | None:
        if command.customer_id <= 0:
            raise InvalidRequest("customer_id", "must be a positive integer")
        if not command.text:
            raise InvalidRequest("text", "must not be empty")
        if len(command.text) > MAX_TEXT_LENGTH:
            raise InvalidRequest("text", f"at most {MAX_TEXT_LENGTH} characters")
        key = command.idempotency_key
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidRequest("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters")
        return key

    def _prepare(self, command: SendSms, now: datetime) -> _Sale:
        """The rows one accepted send writes; raises for a request that cannot be sent."""
        recipients = normalize_recipients(command.recipients)
        if self.routes is not None:
            self.routes.check(recipients)
        priced = quote(command.text, recipients, command.type, self.tariff)
        sms_identifier = self.ids.new_id()
        delivery = DeliveryJob(
            sms_identifier, command.customer_id, command.type, command.text,
            tuple(recipients), priced.share(), now, command.trace,
        )
        charge = Transaction(
            charge_id(sms_identifier), command.customer_id, -priced.cost, TransactionType.CHARGE,
            f"{command.type.value} sms {sms_identifier} to {len(recipients)} recipient(s)", now,
        )
        rows = [
            RecipientMessage(sms_identifier, command.customer_id, r, command.type,
                             SmsStatus.PENDING, "", now, now)
            for r in recipients
        ]
        accepted = Accepted(sms_identifier, priced.segments, priced.cost, len(recipients))
        return _Sale(accepted, delivery, charge, rows)

    async def _replay(self, command: SendSms, key: str) -> Accepted | None:
        async def read(uow: UnitOfWork) -> StoredResponse | None:
            return await uow.idempotency.get(command.customer_id, key)

        stored = await in_transaction(self.uow, read)  # SQLite: a busy reader gives up too
        if stored is None:
            return None
        if stored.request_hash != command.fingerprint():
            raise IdempotencyConflict(key)
        r = stored.response
        return Accepted(
            str(r["sms_identifier"]), int(r["segments"]), int(r["cost"]), int(r["recipients"])
        )
