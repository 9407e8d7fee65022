"""The transactional outbox: what to publish, in which order, and when to retry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from smsgw_core.messages import MessageType

SMS_SEND = "sms.send"


@dataclass(frozen=True, slots=True)
class Delivery:
    """The message the bus carries to a worker: one accepted SMS, all its recipients."""

    sms_identifier: str
    user_id: int
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

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "sms_identifier": self.sms_identifier,
            "user_id": self.user_id,
            "type": self.type.value,
            "text": self.text,
            "recipients": list(self.recipients),
            "unit_share": self.unit_share,
        }
        if self.accepted_at is not None:
            payload["accepted_at"] = self.accepted_at.isoformat()
        if self.trace:
            payload["trace"] = dict(self.trace)
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Delivery:
        accepted_at = payload.get("accepted_at")
        trace = payload.get("trace") or {}
        return cls(
            sms_identifier=str(payload["sms_identifier"]),
            user_id=int(payload["user_id"]),
            type=MessageType(payload["type"]),
            text=str(payload["text"]),
            recipients=tuple(str(r) for r in payload["recipients"]),
            unit_share=int(payload["unit_share"]),
            accepted_at=datetime.fromisoformat(accepted_at) if accepted_at else None,
            trace={str(k): str(v) for k, v in dict(trace).items()},
        )


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    aggregate_id: str
    event_type: str
    payload: dict[str, Any]
    priority: int
    attempts: int
    created_at: datetime

    def delivery(self) -> Delivery:
        return Delivery.from_payload(self.payload)


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
