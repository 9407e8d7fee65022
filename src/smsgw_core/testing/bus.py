"""A bus that keeps what was published."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from smsgw_core.messages import MessageType
from smsgw_core.outbox import DeliveryJob


class RecordingBus:
    """Keeps what was published; `fail_with` makes publishing raise.

    `taken` counts what consumers took of each lane: the rest is its backlog."""

    def __init__(self) -> None:
        self.published: list[DeliveryJob] = []
        self.fail_with: Exception | None = None
        self.taken: dict[MessageType, int] = {kind: 0 for kind in MessageType}

    async def publish(self, deliveries: Sequence[DeliveryJob]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.published.extend(deliveries)

    async def backlog(self) -> Mapping[MessageType, int]:
        return {kind: sum(1 for d in self.published if d.type is kind) - self.taken[kind]
                for kind in MessageType}
