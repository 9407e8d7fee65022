"""Backpressure: refuse new sends while too much accepted work waits to be published.

The figure is the due outbox backlog summed over priorities, read in the
background (a BacklogMonitor refreshes it every second in the API's process):
a send never queries it. Over `SMSGW_MAX_BACKLOG` a send is answered 503 with
Retry-After, before anything is written; the gate reopens at the first reading
back at or under the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from smsgw_core.errors import Overloaded
from smsgw_core.ports import Backlog
from smsgw_core.services.send_sms import Accepted, Sender, SendSms

RETRY_AFTER_S = 5  # what a refused client is told to wait: a few of the gate's refreshes


class BacklogGate:
    def __init__(self, limit: int, retry_after_s: int = RETRY_AFTER_S) -> None:
        if limit < 0 or retry_after_s < 1:
            raise ValueError("limit must be >= 0 (0: no limit) and retry_after_s >= 1")
        self.limit = limit
        self.retry_after_s = retry_after_s
        self._due = 0

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    @property
    def due(self) -> int:
        """The last reading: due outbox events over every priority."""
        return self._due

    def update(self, backlog: Sequence[Backlog], now: datetime) -> None:
        """A BacklogMonitor sink."""
        self._due = sum(reading.events for reading in backlog)

    def admit(self) -> None:
        """Raise Overloaded while the last reading is over the limit."""
        if self.enabled and self._due > self.limit:
            raise Overloaded(self._due, self.limit, self.retry_after_s)


class AdmittedSender:
    """A Sender that asks the gate first: 503 + Retry-After (Overloaded) while the
    backlog is over the limit, before anything is written."""

    def __init__(self, gate: BacklogGate, inner: Sender) -> None:
        self.gate = gate
        self.inner = inner

    async def send(self, command: SendSms) -> Accepted:
        self.gate.admit()
        return await self.inner.send(command)
