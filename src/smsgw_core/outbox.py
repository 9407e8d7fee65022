"""The transactional outbox: what to publish, in which order, and when to retry."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from smsgw_core.backoff import Backoff
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


# Half a second, doubling, a minute at most; never giving up: a publish that
# keeps failing (the broker is down) is tried every minute for as long as it
# takes, so an accepted SMS is never dropped for want of a broker. Its validity
# (validity.py) bounds the wait: past it, the relay fails and refunds the SMS
# instead of publishing it.
PUBLISH = Backoff(first=0.5, factor=2.0, ceiling=60.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed publish is tried again, and how long a claim holds its events."""

    backoff: Backoff = PUBLISH
    lease: timedelta = timedelta(seconds=10)

    def delay(self, attempts: int) -> timedelta:
        """Wait before attempt number `attempts + 1`: an event's `attempts` counts
        the failures in a row of its current try (publishing resets it)."""
        return timedelta(seconds=self.backoff.delay(attempts))
