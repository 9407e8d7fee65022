"""Status webhooks: the customer is told of each status move it subscribed to.

An event is written in the transaction that moves the recipient (settle.py,
services/receipts.py), so a status committed without its event, or an event
without its status, cannot be. It is then delivered, signed as Standard
Webhooks says (adapters/webhooks/signing.py), by the webhook process, and
retried on anything but a 2xx:

    pending --2xx--> delivered
       |  \\--fail--> pending again, after RETRY_DELAYS[attempts - 1] (+-20 %)
       \\--fail past the last delay, or a 410 (the endpoint is disabled)--> dead

A dead or delivered event can be replayed (pending again, attempts from 0),
with the same id: a receiver that counts events by `webhook-id` counts it once.

`sequence` orders the events of one recipient: 1 for how its delivery ended
(sent, failed), 2 for the operator's receipt after it (delivered, undelivered,
expired). The state machine moves a recipient through at most one of each, in
that order, so the number is the recipient's step and needs no counter.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from smsgw_core.messages import SmsStatus

MAX_URL_LENGTH = 2048
ANSWER_KEPT = 200  # bytes of an endpoint's answer kept with each attempt
ROTATION_OVERLAP = timedelta(hours=24)  # the old secret signs beside the new one this long
# The waits after each failed attempt: the Standard Webhooks schedule (immediately,
# 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, ...) stretched to about 3 days, 10 attempts.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10), timedelta(hours=14), timedelta(hours=20),
    timedelta(hours=20),
)
JITTER = 0.2  # each wait is drawn from +-20 % of its nominal length


class EventType(enum.Enum):
    SENT = "message.sent"  # the operator took it (DONE)
    FAILED = "message.failed"  # no operator will take it (FAILED)
    DELIVERED = "message.delivered"  # a receipt: it reached the handset
    UNDELIVERED = "message.undelivered"  # a receipt: refused or lost
    EXPIRED = "message.expired"  # a receipt: the operator's validity ran out
    TEST = "webhook.test"  # POST /v1/webhook/test; always sent, never subscribed to


SUBSCRIBABLE = tuple(t for t in EventType if t is not EventType.TEST)
_OF_STATUS = {
    SmsStatus.DONE: EventType.SENT, SmsStatus.FAILED: EventType.FAILED,
    SmsStatus.DELIVERED: EventType.DELIVERED, SmsStatus.UNDELIVERED: EventType.UNDELIVERED,
    SmsStatus.EXPIRED: EventType.EXPIRED,
}
_STEP = {SmsStatus.DONE: 1, SmsStatus.FAILED: 1, SmsStatus.DELIVERED: 2,
         SmsStatus.UNDELIVERED: 2, SmsStatus.EXPIRED: 2}


def event_type(status: SmsStatus) -> EventType | None:
    """The event a move to `status` makes; None for the moves customers are not told of
    (PENDING, SENDING: the delivery is still going on)."""
    return _OF_STATUS.get(status)


class EventState(enum.Enum):
    PENDING = "pending"  # to send (now, or at its retry time)
    DELIVERED = "delivered"  # the endpoint answered 2xx
    DEAD = "dead"  # retries exhausted, or the endpoint was disabled or deleted


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A recipient's status move, as settle() and the receipts commit it."""

    customer_id: int
    sms_identifier: str
    recipient: str
    status: SmsStatus
    previous: SmsStatus
    operator: str = ""
    error_code: str = ""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A customer's webhook endpoint. Secrets are stored sealed (see SecretBox)."""

    customer_id: int
    url: str
    events: frozenset[EventType]
    secret: str  # sealed
    created_at: datetime
    previous_secret: str = ""  # sealed; signs beside `secret` until `previous_until`
    previous_until: datetime | None = None
    disabled_at: datetime | None = None  # a 410, or the customer's DELETE
    disabled_reason: str = ""

    def sealed_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign now: the current, and the previous during its overlap."""
        if self.previous_secret and self.previous_until is not None and now < self.previous_until:
            return [self.secret, self.previous_secret]
        return [self.secret]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at delivering an event: the endpoint's status code, or why there was none."""

    at: datetime
    status_code: int | None  # None: no answer (timeout, refused, address refused)
    error: str = ""  # "" when the endpoint answered
    answer: str = ""  # the first ANSWER_KEPT bytes of what it answered
    seconds: float = 0.0

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver says the endpoint is no more; it is disabled."""
        return self.status_code == 410


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str  # the `webhook-id`: the same on every attempt and replay
    customer_id: int
    type: EventType
    body: bytes  # the JSON payload, exactly as signed and sent
    created_at: datetime
    state: EventState = EventState.PENDING
    attempts: int = 0
    next_at: datetime | None = None  # pending: when it is due (or its lease ends)
    position: int = 0  # its place in the store (the cursor of the event list)
    history: tuple[Attempt, ...] = field(default=())  # oldest first, where read with them


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What an attempt leaves an event as: delivered, pending again at `next_at`, or dead."""

    event_id: str
    attempt: Attempt
    state: EventState
    next_at: datetime | None = None
    position: int | None = None  # the event's place when known: recorded without a lookup


def outcome(event: WebhookEvent, attempt: Attempt, jitter: float,
            delays: tuple[timedelta, ...] = RETRY_DELAYS) -> EventOutcome:
    """After `attempt` (the event's attempts count it already), with `jitter` in [-1, 1]
    and the waits `delays` (SMSGW_WEBHOOK_RETRY_S)."""
    position = event.position or None  # 0: not stored yet
    if attempt.delivered:
        return EventOutcome(event.id, attempt, EventState.DELIVERED, None, position)
    delay = retry_delay(event.attempts, jitter, delays)
    if attempt.gone or delay is None:
        return EventOutcome(event.id, attempt, EventState.DEAD, None, position)
    return EventOutcome(event.id, attempt, EventState.PENDING, attempt.at + delay, position)


def retry_delay(attempts: int, jitter: float,
                delays: tuple[timedelta, ...] = RETRY_DELAYS) -> timedelta | None:
    """The wait after the `attempts`-th failed attempt (1 the first); None: give up."""
    if attempts < 1 or attempts > len(delays):
        return None
    return delays[attempts - 1] * (1 + JITTER * max(-1.0, min(1.0, jitter)))


def event_id(sms_identifier: str, recipient: str, sequence: int) -> str:
    """A status move's event id: derived, so the move and its id are one fact."""
    digest = hashlib.sha256(f"{sms_identifier}\0{recipient}\0{sequence}".encode()).digest()
    return "msg_" + base64.b32encode(digest[:20]).decode().lower()


def event_of(change: StatusChange, at: datetime) -> WebhookEvent | None:
    kind = event_type(change.status)
    if kind is None:
        return None
    sequence = _STEP[change.status]
    data = {
        "message_id": change.sms_identifier,
        "recipient": change.recipient,
        "status": change.status.value.lower(),
        "previous_status": change.previous.value.lower(),
        "error_code": change.error_code or None,
        "operator": change.operator or None,
        "sequence": sequence,
    }
    return WebhookEvent(event_id(change.sms_identifier, change.recipient, sequence),
                        change.customer_id, kind, payload(kind, at, data), at, next_at=at)


def test_event(customer_id: int, id_: str, at: datetime) -> WebhookEvent:
    body = payload(EventType.TEST, at, {"customer_id": customer_id})
    return WebhookEvent(id_, customer_id, EventType.TEST, body, at, next_at=at)


def payload(kind: EventType, at: datetime, data: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind.value, "timestamp": at.isoformat(), "data": data},
                      separators=(",", ":")).encode()


def events_for(changes: list[StatusChange], subscribed: dict[int, frozenset[EventType]],
               at: datetime) -> list[WebhookEvent]:
    """The events of these moves that their customers subscribed to."""
    events = []
    for change in changes:
        kinds = subscribed.get(change.customer_id)
        kind = event_type(change.status)
        if kinds and kind in kinds:
            event = event_of(change, at)
            if event is not None:
                events.append(event)
    return events
