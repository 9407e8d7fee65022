"""A bus that keeps what was published."""

from __future__ import annotations

from collections.abc import Sequence

from smsgw_core.outbox import DeliveryJob


class RecordingBus:
    """Keeps what was published; `fail_with` makes publishing raise."""

    def __init__(self) -> None:
        self.published: list[DeliveryJob] = []
        self.fail_with: Exception | None = None

    async def publish(self, deliveries: Sequence[DeliveryJob]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.published.extend(deliveries)
