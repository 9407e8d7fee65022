"""The vocabulary shared with operators: what we send, and how an operator fails."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class ErrorClass(enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


class OperatorError(Exception):
    def __init__(self, operator: str, error_class: ErrorClass, reason: str) -> None:
        super().__init__(f"{operator}: {error_class.value}: {reason}")
        self.operator = operator
        self.error_class = error_class
        self.reason = reason

    @property
    def transient(self) -> bool:
        return self.error_class is ErrorClass.TRANSIENT


class CircuitOpen(Exception):
    def __init__(self, operator: str) -> None:
        super().__init__(f"{operator}: circuit open")
        self.operator = operator


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    recipient: str
    text: str
    reference: str  # stable per recipient, so an operator can drop a resend
    # When the SMS's validity ends (SMSGW_MESSAGE_TTL_S after acceptance): an operator
    # that can carry it (SMPP's validity_period) stops trying then too.
    valid_until: datetime | None = None
