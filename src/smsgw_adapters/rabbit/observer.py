"""What the RabbitMQ adapter reports about the messages it moves, for metrics.

Every call names the queue concerned. An observer must be cheap and must not
raise: it runs on the publish and consume paths.
"""

from __future__ import annotations

from typing import Protocol


class QueueObserver(Protocol):
    def published(self, queue: str) -> None:
        """The broker confirmed a message published to `queue`."""

    def consumed(self, queue: str) -> None:
        """A message of `queue` was handled and acked."""

    def redelivered(self, queue: str) -> None:
        """A message of `queue` arrived with the redelivered flag (delivered before)."""

    def dead_lettered(self, queue: str) -> None:
        """A message of `queue` was moved to the dead-letter queue by the consumer."""


class NoQueueObserver:
    def published(self, queue: str) -> None:
        return None

    def consumed(self, queue: str) -> None:
        return None

    def redelivered(self, queue: str) -> None:
        return None

    def dead_lettered(self, queue: str) -> None:
        return None
