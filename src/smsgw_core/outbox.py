"""The transactional outbox: what to publish, in which order, and when to retry."""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def priority(self) -> int:
        return self.type.priority

    def to_payload(self) -> dict[str, Any]:
        return {
            "sms_identifier": self.sms_identifier,
            "user_id": self.user_id,
            "type": self.type.value,
            "text": self.text,
            "recipients": list(self.recipients),
            "unit_share": self.unit_share,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Delivery:
        return cls(
            sms_identifier=str(payload["sms_identifier"]),
            user_id=int(payload["user_id"]),
            type=MessageType(payload["type"]),
            text=str(payload["text"]),
            recipients=tuple(str(r) for r in payload["recipients"]),
            unit_share=int(payload["unit_share"]),
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
    """Exponential backoff for publishing; after `max_attempts` the event is parked."""

    base: timedelta = timedelta(milliseconds=500)
    cap: timedelta = timedelta(minutes=5)
    max_attempts: int = 20
    lease: timedelta = timedelta(seconds=10)

    def delay(self, attempts: int) -> timedelta:
        """Wait before attempt number `attempts + 1` (attempts >= 1)."""
        factor = 1 << min(max(attempts - 1, 0), 30)
        return min(self.base * factor, self.cap)

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
