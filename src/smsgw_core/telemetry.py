"""What the use cases report, for metrics: a port with a silent default.

Called only after the effect is committed, so a figure never counts money or
a status that was rolled back.
"""

from __future__ import annotations

from typing import Protocol

from smsgw_core.ledger import TransactionType
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.receipts import Reported


class Telemetry(Protocol):
    def ledger(self, type: TransactionType, amount: int, count: int = 1) -> None:
        """`count` transactions of `type` moving `amount` units in all (absolute)."""

    def finished(self, type: MessageType, status: SmsStatus, seconds: float | None) -> None:
        """A recipient reached `status`, `seconds` after its SMS was accepted."""

    def relayed(self, type: MessageType, published: int, failed: int, parked: int) -> None:
        """Outcome of publishing a batch of outbox events of one type."""

    def receipt_applied(self, operator: str, reported: Reported, seconds: float) -> None:
        """A receipt moved its recipient, `seconds` after the operator took it."""

    def receipt_unmatched(self, operator: str, verdict: str) -> None:
        """A receipt that moved nothing: "kept" (no recipient yet) or "duplicate"."""

    def receipt_orphans(self, operator: str, count: int) -> None:
        """Kept receipts dropped after the orphan time: no recipient ever had their id."""


class NoTelemetry:
    def ledger(self, type: TransactionType, amount: int, count: int = 1) -> None:
        return None

    def finished(self, type: MessageType, status: SmsStatus, seconds: float | None) -> None:
        return None

    def relayed(self, type: MessageType, published: int, failed: int, parked: int) -> None:
        return None

    def receipt_applied(self, operator: str, reported: Reported, seconds: float) -> None:
        return None

    def receipt_unmatched(self, operator: str, verdict: str) -> None:
        return None

    def receipt_orphans(self, operator: str, count: int) -> None:
        return None


class RecordingTelemetry:
    """Keeps every report: for tests and for embedders that want the figures."""

    def __init__(self) -> None:
        self.ledger_moves: list[tuple[TransactionType, int, int]] = []
        self.finishes: list[tuple[MessageType, SmsStatus, float | None]] = []
        self.relays: list[tuple[MessageType, int, int, int]] = []
        self.receipts: list[tuple[str, str]] = []  # (operator, status or kept/duplicate/orphan)

    def ledger(self, type: TransactionType, amount: int, count: int = 1) -> None:
        self.ledger_moves.append((type, amount, count))

    def finished(self, type: MessageType, status: SmsStatus, seconds: float | None) -> None:
        self.finishes.append((type, status, seconds))

    def relayed(self, type: MessageType, published: int, failed: int, parked: int) -> None:
        self.relays.append((type, published, failed, parked))

    def receipt_applied(self, operator: str, reported: Reported, seconds: float) -> None:
        self.receipts.append((operator, reported.value))

    def receipt_unmatched(self, operator: str, verdict: str) -> None:
        self.receipts.append((operator, verdict))

    def receipt_orphans(self, operator: str, count: int) -> None:
        self.receipts.extend([(operator, "orphan")] * count)
