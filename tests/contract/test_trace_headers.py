"""The trace context on RabbitMQ: published in the headers, read back from them by the consumer."""

from __future__ import annotations

import dataclasses

import aio_pika
import pytest
from bus_helpers import eventually, rabbit_backend
from contract_helpers import delivery
from tests.services import RABBITMQ_URL

from smsgw_adapters import codec
from smsgw_core.outbox import DeliveryJob

pytestmark = pytest.mark.slow

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OTHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_the_delivery_trace_goes_in_the_message_headers() -> None:
    async with rabbit_backend() as backend:
        traced = dataclasses.replace(
            delivery("sms-t1"), trace={"traceparent": TRACEPARENT, "tracestate": "v=1"}
        )
        await backend.bus.publish([traced, delivery("sms-t2")])
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(backend.topology.normal_queue, ensure=False)
            first = await queue.get(timeout=5)
            second = await queue.get(timeout=5)
            await first.ack()
            await second.ack()
    headers = {m.message_id: m.headers for m in (first, second)}
    assert headers["sms-t1"]["traceparent"] == TRACEPARENT
    assert headers["sms-t1"]["tracestate"] == "v=1"
    assert "traceparent" not in headers["sms-t2"]


async def test_the_consumer_takes_the_trace_from_the_headers() -> None:
    seen: dict[str, dict[str, str]] = {}

    async def handler(d: DeliveryJob) -> None:
        seen[d.sms_identifier] = d.trace

    async with rabbit_backend() as backend:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            for sms, headers, body_trace in (
                ("sms-h", {"traceparent": OTHER}, {"traceparent": TRACEPARENT}),
                ("sms-b", {}, {"traceparent": TRACEPARENT}),
                ("sms-n", {}, {}),
            ):
                body = codec.encode(dataclasses.replace(delivery(sms), trace=body_trace))
                await channel.default_exchange.publish(
                    aio_pika.Message(body, headers=headers,
                                     message_id=sms),
                    routing_key=backend.topology.normal_queue,
                )
        consumer = backend.consumer(handler)
        await consumer.start()
        await eventually(lambda: len(seen) == 3, "all three handled")
    assert seen["sms-h"] == {"traceparent": OTHER}  # the headers win over the body
    assert seen["sms-b"] == {"traceparent": TRACEPARENT}  # no headers: the body's
    assert seen["sms-n"] == {}
