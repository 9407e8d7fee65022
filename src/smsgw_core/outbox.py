"""The transactional outbox: what to publish, in which order, and when to retry."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from smsgw_core.messages import MessageType

SMS_SEND = "sms.send"


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """The message the bus carries to a worker: one accepted SMS, all its recipients
    or a part of them (see `chunks`)."""

    sms_identifier: str
    customer_id: int
    type: MessageType
    text: str
    recipients: tuple[str, ...]
    unit_share: int  # refund per failed recipient
    accepted_at: datetime | None = None  # for accept-to-terminal latency
    # The accepting request's trace context (W3C traceparent and friends),
    # carried opaquely so one trace spans API, relay, bus, worker and operator.
    trace: dict[str, str] = field(default_factory=dict)

    @property
    def priority(self) -> int:
        return self.type.priority

    def chunks(self, size: int) -> list[DeliveryJob]:
        """This SMS as deliveries of at most `size` recipients each (itself when it
        fits): a worker holds one delivery until its last recipient is sent, so a
        large SMS in one piece would hold it for a long time, ahead of the others."""
        if len(self.recipients) <= size:
            return [self]
        return [replace(self, recipients=self.recipients[i:i + size])
                for i in range(0, len(self.recipients), size)]


class UndecodablePayload(ValueError):
    """A stored or received payload that is not a delivery: it can never be one."""


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    aggregate_id: str
    event_type: str
    # Decoded by the adapter that read it (the payload's format is the adapters'):
    # the delivery, or why the stored payload is none.
    content: DeliveryJob | UndecodablePayload
    priority: int
    attempts: int
    created_at: datetime

    def delivery(self) -> DeliveryJob:
        """The event's delivery; raises UndecodablePayload when it has none."""
        if isinstance(self.content, UndecodablePayload):
            raise self.content
        return self.content


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff for publishing, capped; never giving up.

    A publish that keeps failing (the broker is down) is retried every `cap` at
    worst, for as long as it takes: an accepted SMS is never dropped for want of
    a broker. Its validity (validity.py) bounds the wait: past it, the relay
    fails and refunds the SMS instead of publishing it. `attempts` counts the
    consecutive failures of the current try only (publishing resets it).
    """

    base: timedelta = timedelta(milliseconds=500)
    cap: timedelta = timedelta(seconds=60)
    lease: timedelta = timedelta(seconds=10)

    def delay(self, attempts: int) -> timedelta:
        """Wait before attempt number `attempts + 1` (attempts >= 1)."""
        factor = 1 << min(max(attempts - 1, 0), 30)
        return min(self.base * factor, self.cap)
