"""The bus's counters: published, consumed, redelivered and dead-lettered, per queue."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter

from smsgw_core.messages import MessageType


def priority_label(priority: int) -> str:
    """The outbox priority as its message type (express/normal)."""
    for kind in MessageType:
        if kind.priority == priority:
            return kind.value
    return str(priority)


class QueueCounters:
    """Observes a bus: the RabbitMQ adapter's QueueObserver and the in-process bus's."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, ["queue"], registry=registry)

        self._published = counter("smsgw_queue_published_total",
                                  "Messages published to a queue and confirmed by the broker.")
        self._consumed = counter("smsgw_queue_consumed_total",
                                 "Messages of a queue handled and acknowledged.")
        self._redelivered = counter("smsgw_queue_redelivered_total",
                                    "Messages of a queue received again (redelivered flag).")
        self._dead_lettered = counter("smsgw_queue_dead_lettered_total",
                                      "Messages of a queue moved to the dead-letter queue.")

    def declare(self, queues: Iterable[str]) -> QueueCounters:
        """Create the series of `queues` at zero; returns self, the observer to hand over."""
        for queue in queues:
            for counter in (self._published, self._consumed, self._redelivered,
                            self._dead_lettered):
                counter.labels(queue)
        return self

    def published(self, queue: str) -> None:
        self._published.labels(queue).inc()

    def consumed(self, queue: str) -> None:
        self._consumed.labels(queue).inc()

    def redelivered(self, queue: str) -> None:
        self._redelivered.labels(queue).inc()

    def dead_lettered(self, queue: str) -> None:
        self._dead_lettered.labels(queue).inc()
