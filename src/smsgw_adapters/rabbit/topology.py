"""Where deliveries live in RabbitMQ: one quorum queue per message type, one dead-letter queue.

Quorum, not classic (see docs/rabbitmq.md): replicated when the broker is a
cluster, and a delivery limit that dead-letters a message the workers keep
failing on, so one bad message cannot loop forever. Quorum queues (3.10) have
no per-message priority; express has a queue and consumers of its own instead.

Everything goes through the default exchange (routing key = queue name): a
publish is mandatory, so a missing queue comes back as unroutable and the
publisher raises, with no binding that could silently be missing.

A queue's arguments are fixed when it is declared: changing any value here for
an existing queue makes the declaration fail (PRECONDITION_FAILED); rename the
queue or delete it (after draining) to change them.
"""

from __future__ import annotations

from dataclasses import dataclass

from faststream.rabbit import QueueType, RabbitQueue
from faststream.rabbit.schemas.queue import QuorumQueueArgs

from smsgw_core.messages import MessageType


@dataclass(frozen=True, slots=True)
class RabbitTopology:
    normal_queue: str = "NORMAL_QUEUE"
    express_queue: str = "EXPRESS_QUEUE"
    dead_letter_queue: str = "SMSGW_DEAD_LETTER"
    # Deliveries a consumer may hold unacknowledged (at least its worker count).
    prefetch: int = 32
    # Deliveries of one message (crashed workers and requeues count) before the
    # broker dead-letters it; the outbox's redrive still re-publishes its SMS.
    delivery_limit: int = 20
    # Bound on ready messages per work queue; beyond it publishes are refused
    # (nacked) and the backlog stays in the outbox. None: unbounded.
    max_length: int | None = None

    def queue_for(self, kind: MessageType) -> str:
        return self.express_queue if kind is MessageType.EXPRESS else self.normal_queue

    @property
    def work_queues(self) -> tuple[str, str]:
        return (self.express_queue, self.normal_queue)


def work_queue(topology: RabbitTopology, name: str) -> RabbitQueue:
    arguments: QuorumQueueArgs = {
        "x-delivery-limit": topology.delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": topology.dead_letter_queue,
        # At-least-once dead-lettering (3.10+) needs reject-publish overflow;
        # without it a message dead-lettered by the broker may be lost on the way.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    if topology.max_length is not None:
        arguments["x-max-length"] = topology.max_length
    return RabbitQueue(name, queue_type=QueueType.QUORUM, durable=True, arguments=arguments)


def dead_letter_queue(topology: RabbitTopology) -> RabbitQueue:
    return RabbitQueue(topology.dead_letter_queue, queue_type=QueueType.QUORUM, durable=True)
