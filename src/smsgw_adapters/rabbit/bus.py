"""The MessageBus port on RabbitMQ: persistent, confirmed, mandatory publishes.

`publish` returns only when the broker has confirmed every delivery of the
batch (all confirms in flight at once, so a batch costs about one round trip),
and raises if any was refused or unroutable; the outbox relay then retries the
whole batch later. A retried batch may duplicate what was already confirmed:
consumers are idempotent, and the stable message id (the SMS identifier) lets
anyone inspecting the queues see the duplicates for what they are.

With `bundle` above 1, the deliveries of a batch bound for one queue go
together in messages of up to `bundle` recipients (a JSON array; a lone
delivery stays a plain object, and one of more recipients goes alone): the
broker persists, confirms and hands over each message once, and the consumer
acks it once its every delivery is settled, so single-recipient SMS share the
per-message cost on both sides and in the broker, while a message is never
more work than a chunk of a large SMS (SMSGW_DELIVERY_CHUNK): a worker holds a
message until its last recipient is sent, and what waits behind it waits that
long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from faststream.rabbit import Channel
from pamqp.commands import Basic

from smsgw_adapters.rabbit.codec import CONTENT_TYPE, encode_bundle
from smsgw_adapters.rabbit.connection import make_broker
from smsgw_adapters.rabbit.observer import NoQueueObserver, QueueObserver
from smsgw_adapters.rabbit.topology import RabbitTopology, dead_letter_queue, work_queue
from smsgw_adapters.trace_carrier import TRACE_FIELDS, carrier_from_headers
from smsgw_core.messages import MessageType
from smsgw_core.outbox import SMS_SEND, DeliveryJob


def _message_id(bundle: Sequence[DeliveryJob]) -> str:
    """A lone delivery's SMS identifier; a bundle's first, with how many follow."""
    first = bundle[0].sms_identifier
    return first if len(bundle) == 1 else f"{first}+{len(bundle) - 1}"


class PublishFailed(Exception):
    """Some deliveries of a batch were not confirmed by the broker."""


class RabbitBus:
    def __init__(
        self,
        url: str,
        topology: RabbitTopology | None = None,
        *,
        connection_name: str = "smsgw-publisher",
        confirm_timeout: float = 5.0,
        reconnect_interval: float = 2.0,
        observer: QueueObserver | None = None,
        trace_fields: Collection[str] = TRACE_FIELDS,
        bundle: int = 1,
    ) -> None:
        if bundle < 1:
            raise ValueError("a bundle holds at least one recipient")
        self.bundle = bundle
        self._trace_fields = trace_fields
        self.url = url
        self.topology = topology or RabbitTopology()
        self._confirm_timeout = confirm_timeout
        self._observer: QueueObserver = observer or NoQueueObserver()
        self._broker = make_broker(
            url, connection_name=connection_name, reconnect_interval=reconnect_interval
        )
        # Passive declares that fail close their channel: keep them off the one
        # publishes use.
        self._inspect_channel = Channel(publisher_confirms=False)
        self._connection: AbstractRobustConnection | None = None

    async def start(self) -> None:
        """Connect and declare the topology (idempotent: same arguments, no change)."""
        self._connection = await self._broker.connect()
        await self._broker.declare_queue(dead_letter_queue(self.topology))
        for name in self.topology.work_queues:
            await self._broker.declare_queue(work_queue(self.topology, name))
        await self._broker.start()

    async def close(self) -> None:
        await self._broker.stop()
        self._connection = None

    def is_connected(self) -> bool:
        """False while the connection is down and being re-established."""
        connection = self._connection
        return connection is not None and connection.connected.is_set()

    async def publish(self, deliveries: Sequence[DeliveryJob]) -> None:
        bundles = self._bundles(deliveries)
        results = await asyncio.gather(
            *(self._publish_bundle(b) for b in bundles), return_exceptions=True
        )
        failed = [(b, r) for b, r in zip(bundles, results, strict=True)
                  if isinstance(r, BaseException)]
        if failed:
            lost = sum(len(b) for b, _ in failed)
            raise PublishFailed(
                f"{lost} of {len(deliveries)} deliveries not confirmed: "
                + "; ".join(f"{_message_id(b)}: {r!r}" for b, r in failed[:5])
            )

    def _bundles(self, deliveries: Sequence[DeliveryJob]) -> list[list[DeliveryJob]]:
        """The deliveries in messages of one queue each, in the order given within
        each queue, holding `bundle` recipients at most (a larger delivery alone)."""
        by_kind: dict[MessageType, list[DeliveryJob]] = {}
        for delivery in deliveries:
            by_kind.setdefault(delivery.type, []).append(delivery)
        bundles: list[list[DeliveryJob]] = []
        for of_kind in by_kind.values():
            current: list[DeliveryJob] = []
            recipients = 0
            for delivery in of_kind:
                if current and recipients + len(delivery.recipients) > self.bundle:
                    bundles.append(current)
                    current, recipients = [], 0
                current.append(delivery)
                recipients += len(delivery.recipients)
            bundles.append(current)
        return bundles

    async def _publish_bundle(self, bundle: list[DeliveryJob]) -> None:
        first = bundle[0]
        queue = self.topology.queue_for(first.type)
        # The trace context (W3C traceparent…) the relay's publish span put in a lone
        # delivery goes in the headers too, where any AMQP-aware tracer looks for it;
        # a bundle's deliveries each carry theirs in the body.
        headers: dict[str, Any] = (
            dict(carrier_from_headers(first.trace, self._trace_fields)) if len(bundle) == 1
            else {})
        message_id = _message_id(bundle)
        confirmation = await self._broker.publish(
            encode_bundle(bundle),
            queue=queue,
            mandatory=True,  # unroutable: returned, and raised (on_return_raises)
            persist=True,  # delivery_mode 2
            timeout=self._confirm_timeout,
            message_id=message_id,
            correlation_id=message_id,
            content_type=CONTENT_TYPE,
            message_type=SMS_SEND,
            headers=headers or None,
        )
        # A nack raises in aio-pika; anything but an ack here is a surprise, not a success.
        if not isinstance(confirmation, Basic.Ack):
            raise PublishFailed(f"not confirmed: {confirmation!r}")
        self._observer.published(queue)

    async def backlog(self) -> dict[MessageType, int]:
        """Deliveries ready (not yet handed to a consumer) per lane, at most: the
        queue's ready messages times the bundle (a message holds up to `bundle`
        recipients, so up to that many deliveries)."""
        return {kind: await self._ready(self.topology.queue_for(kind)) * self.bundle
                for kind in MessageType}

    async def dead_letters(self) -> int:
        """Messages waiting in the dead-letter queue for someone to look at them."""
        return await self._ready(self.topology.dead_letter_queue)

    async def _ready(self, name: str) -> int:
        channel = await self._broker.config.channel_manager.get_channel(self._inspect_channel)
        queue = await channel.declare_queue(name, passive=True, robust=False)
        return queue.declaration_result.message_count or 0
