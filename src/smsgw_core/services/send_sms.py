"""Accept an SMS: charge, record each recipient PENDING, and queue it, in one transaction.

The balance row is touched last: inserts before it take no lock on it, so the
hot row of a customer who sends most traffic is held for the shortest time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from smsgw_core.errors import DuplicateIdempotencyKey, IdempotencyConflict, InvalidRequest
from smsgw_core.ledger import Transaction, TransactionType, charge_id
from smsgw_core.messages import MessageType, RecipientMessage, SmsStatus, normalize_recipients
from smsgw_core.outbox import Delivery
from smsgw_core.ports import Clock, IdGenerator, OutboxSignal, StoredResponse, UnitOfWorkFactory
from smsgw_core.pricing import Tariff, quote
from smsgw_core.telemetry import NoTelemetry, Telemetry

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

    async def send(self, command: SendSms) -> Accepted:
        if command.customer_id <= 0:
            raise InvalidRequest("customer_id", "must be a positive integer")
        if not command.text:
            raise InvalidRequest("text", "must not be empty")
        key = command.idempotency_key
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidRequest("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters")
        recipients = normalize_recipients(command.recipients)
        priced = quote(command.text, recipients, command.type, self.tariff)
        if key is not None and (replay := await self._replay(command, key)) is not None:
            return replay

        now = self.clock.now()
        sms_identifier = self.ids.new_id()
        accepted = Accepted(sms_identifier, priced.segments, priced.cost, len(recipients))
        delivery = Delivery(
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
        try:
            async with self.uow() as uow:
                await uow.messages.add(rows)
                await uow.outbox.add(delivery, now)
                if key is not None:
                    stored = StoredResponse(command.fingerprint(), accepted.to_dict())
                    await uow.idempotency.add(command.customer_id, key, stored, now)
                await uow.ledger.apply(charge)  # last: the balance row lock is held shortest
                await uow.commit()
        except DuplicateIdempotencyKey:
            # A concurrent request with the same key committed first: answer as it did.
            assert key is not None
            replay = await self._replay(command, key)
            if replay is None:
                raise
            return replay
        self.signal.notify()
        self.telemetry.ledger(TransactionType.CHARGE, priced.cost)
        return accepted

    async def _replay(self, command: SendSms, key: str) -> Accepted | None:
        async with self.uow() as uow:
            stored = await uow.idempotency.get(command.customer_id, key)
        if stored is None:
            return None
        if stored.request_hash != command.fingerprint():
            raise IdempotencyConflict(key)
        r = stored.response
        return Accepted(
            str(r["sms_identifier"]), int(r["segments"]), int(r["cost"]), int(r["recipients"])
        )
