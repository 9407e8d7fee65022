"""Consume deliveries from RabbitMQ and hand them to a handler, acking only its success.

Express and normal are separate subscribers (each on its own channel, with its
own prefetch and its own workers), so a normal backlog never delays express.

For each message:
- it decodes to a DeliveryJob, or a bundle of them: the handler runs for each
  (a bundle's at once), and the message is acked only after every one returned
  (the handler commits its effect before returning);
- a handler raises: the message is nacked with requeue, after a pause that
  grows with the broker's `x-delivery-count` (REDELIVERY: no hot loop). It
  never leaves the broker's custody, and past the queue's delivery limit the
  broker dead-letters it (reason `delivery_limit` in `x-death`);
- it does not decode (poison): it is republished, confirmed, to the dead-letter
  queue with the reason in a header, and only then acked. Retrying cannot help.

Anything unacked when a consumer stops, crashes or loses its connection is
redelivered by the broker: at-least-once, and the handler is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Collection
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel
from faststream.rabbit.message import RabbitMessage
from faststream.rabbit.subscriber import RabbitSubscriber

from smsgw_adapters.bus import DeliveryHandler
from smsgw_adapters.rabbit.bus import RabbitBus
from smsgw_adapters.rabbit.codec import (
    DEAD_LETTER_REASON,
    DEAD_LETTER_SOURCE,
    PoisonMessage,
    decode,
)
from smsgw_adapters.rabbit.connection import make_broker
from smsgw_adapters.rabbit.observer import NoQueueObserver, QueueObserver
from smsgw_adapters.rabbit.topology import dead_letter_queue, work_queue
from smsgw_adapters.trace_carrier import TRACE_FIELDS, carrier_from_headers
from smsgw_core.backoff import Backoff

log = logging.getLogger("smsgw.rabbit")

# A second, doubling with each delivery, half a minute at most: a message whose
# handler keeps failing comes back less and less often until the queue's
# delivery limit dead-letters it.
REDELIVERY = Backoff(first=1.0, factor=2.0, ceiling=30.0)


class RabbitConsumer:
    def __init__(
        self,
        bus: RabbitBus,
        handler: DeliveryHandler,
        *,
        express_workers: int = 4,
        normal_workers: int = 16,
        redelivery: Backoff = REDELIVERY,
        connection_name: str = "smsgw-worker",
        reconnect_interval: float = 2.0,
        confirm_timeout: float = 5.0,
        observer: QueueObserver | None = None,
        trace_fields: Collection[str] = TRACE_FIELDS,
    ) -> None:
        self._trace_fields = trace_fields
        # The bus's broker and queues, on a connection of its own (see connection.py).
        topology = self.topology = bus.topology
        self._handler = handler
        self._redelivery = redelivery
        self._confirm_timeout = confirm_timeout
        self._observer: QueueObserver = observer or NoQueueObserver()
        self._broker = make_broker(
            bus.url, connection_name=connection_name, reconnect_interval=reconnect_interval
        )
        self._connection: AbstractRobustConnection | None = None
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[Any]] = set()
        if express_workers < 0 or normal_workers < 0 or express_workers + normal_workers < 1:
            raise ValueError(
                f"at least one worker is needed, got {express_workers} express and "
                f"{normal_workers} normal"
            )
        # A lane with no workers is not consumed at all: an express-only worker
        # process leaves the normal queue to others (and the reverse).
        self._subscribers = [
            self._subscribe(queue, workers)
            for queue, workers in ((topology.express_queue, express_workers),
                                   (topology.normal_queue, normal_workers))
            if workers > 0
        ]

    def _subscribe(self, queue: str, workers: int) -> RabbitSubscriber:
        # Handlers run as one task per delivered message; the gate caps them at
        # `workers`. Express: prefetch keeps the next messages at hand for them.
        # Normal: no more than the workers hold, since a message prefetched here
        # waits behind the others first come first served, and the relay keeps
        # the queue short so that the fair order across customers is the outbox's.
        gate = asyncio.Semaphore(workers)
        prefetch = workers if queue == self.topology.normal_queue else max(
            self.topology.prefetch, workers)
        channel = Channel(prefetch_count=prefetch)
        subscriber = self._broker.subscriber(
            work_queue(self.topology, queue),
            channel=channel,
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_message,  # we decode ourselves: a bad body must not fail first
            no_reply=True,
        )

        async def on_message(message: RabbitMessage) -> None:
            await self._on_message(message, queue, gate)

        subscriber(on_message)
        return subscriber

    async def start(self) -> None:
        self._connection = await self._broker.connect()
        # Not the work queues: a queue declared here would be reused, with this
        # default channel, by its subscriber, which would lose its prefetch.
        await self._broker.declare_queue(dead_letter_queue(self.topology))
        await self._broker.start()

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a grace period)
        """Stop taking messages; give in-flight handlers `timeout` seconds to finish.

        Handlers still running then are cancelled; their messages, like the ones
        prefetched but not started, are unacked and the broker redelivers them.
        """
        self._stopping.set()
        for subscriber in self._subscribers:
            await subscriber.stop()  # basic.cancel: nothing new is delivered
        pending = set(self._in_flight)
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._broker.stop()
        self._connection = None

    def is_connected(self) -> bool:
        connection = self._connection
        return connection is not None and connection.connected.is_set()

    async def _on_message(
        self, message: RabbitMessage, queue: str, gate: asyncio.Semaphore
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            async with gate:
                if self._stopping.is_set():
                    return  # not started: unacked, redelivered once our channel closes
                await self._process(message, queue)
        finally:
            self._in_flight.discard(task)

    async def _process(self, message: RabbitMessage, queue: str) -> None:
        if message.raw_message.redelivered:
            self._observer.redelivered(queue)
        try:
            deliveries = decode(message.body)
        except PoisonMessage as poison:
            await self._dead_letter(message, queue, poison.reason)
            return
        carrier = carrier_from_headers(message.raw_message.headers, self._trace_fields)
        if carrier and len(deliveries) == 1:  # the headers' trace context wins over the body's
            deliveries = [replace(deliveries[0], trace=carrier)]
        # A bundle's deliveries go at once (their claims and outcomes share
        # transactions); the message is acked once every one is settled, and
        # requeued whole if any failed: the settled ones then find nothing to do.
        outcomes = await asyncio.gather(*(self._handler(d) for d in deliveries),
                                        return_exceptions=True)
        failed = [(d, o) for d, o in zip(deliveries, outcomes, strict=True)
                  if isinstance(o, BaseException)]
        if failed:
            delivery, error = failed[0]
            log.error("handling %s failed (%d of %d in its message); it will be redelivered",
                      delivery.sms_identifier, len(failed), len(deliveries), exc_info=error)
            await self._requeue_later(message)
            return
        if await _settle(message.ack(), message):
            self._observer.consumed(queue)

    async def _dead_letter(self, message: RabbitMessage, queue: str, reason: str) -> None:
        log.error("poison message %s in %s: %s", message.message_id, queue, reason)
        raw = message.raw_message
        headers = {k: v for k, v in (raw.headers or {}).items() if k != "x-delivery-count"}
        headers[DEAD_LETTER_REASON] = reason[:1000]
        headers[DEAD_LETTER_SOURCE] = queue
        headers["x-smsgw-dead-lettered-at"] = datetime.now(UTC).isoformat()
        try:
            await self._broker.publish(
                raw.body,
                queue=self.topology.dead_letter_queue,
                mandatory=True,
                persist=True,
                timeout=self._confirm_timeout,
                headers=headers,
                message_id=raw.message_id,
                correlation_id=raw.correlation_id,
                content_type=raw.content_type,
                message_type=raw.type,
            )
        except Exception:
            # Keep it where it is rather than lose it; it comes back after a pause.
            log.exception("could not dead-letter %s; requeueing it", message.message_id)
            await self._requeue_later(message)
            return
        self._observer.dead_lettered(queue)
        await _settle(message.ack(), message)

    async def _requeue_later(self, message: RabbitMessage) -> None:
        # The broker counts the deliveries before this one: this failure is one more.
        earlier = message.raw_message.headers.get("x-delivery-count", 0)
        delay = self._redelivery.delay((earlier if isinstance(earlier, int) else 0) + 1)
        # Stopping cuts the pause short: the message goes back for another consumer.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        await _settle(message.nack(requeue=True), message)


async def _raw_message(message: StreamMessage[Any]) -> StreamMessage[Any]:
    return message


async def _settle(action: Awaitable[None], message: RabbitMessage) -> bool:
    try:
        await action
    except Exception:
        # The channel is gone (connection lost): the broker redelivers the
        # message anyway, and the handler's effect is idempotent.
        log.warning("could not settle %s; the broker will redeliver it", message.message_id)
        return False
    return True
