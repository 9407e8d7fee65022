"""What FastStream's own subscriber model would cost our consumer, per message, on RabbitMQ.

    .venv/bin/python benchmarks/faststream_paths.py [--messages 20000] [--rounds 3]

Publishes `--messages` deliveries (the gateway's own JSON) to a queue of its own
and consumes them with a handler that does nothing, in two builds that take
turns for `--rounds` rounds:

- ours:       what RabbitConsumer does: `apply_types=False`, the raw decoder,
              `AckPolicy.MANUAL`, our msgspec codec, an ack after the handler;
- faststream: FastStream's subscriber model: `apply_types=True` (its
              dependency injection and pydantic validation of the body into a
              typed argument), its JSON decoder, `AckPolicy.REJECT_ON_ERROR`.

Prints each build's median messages/s and CPU per message (this process: the
client side, which is what the gateway's worker pays). Needs RabbitMQ
(SMSGW_BENCH_BROKER_URL, default amqp://guest:guest@127.0.0.1:5672/); the queue
is deleted afterwards. docs/rabbitmq.md records the figures and the decision.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.message import RabbitMessage
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from smsgw_adapters import codec
from smsgw_core.messages import MessageType
from smsgw_core.outbox import DeliveryJob

URL = os.environ.get("SMSGW_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


class Body(BaseModel):
    """The delivery as FastStream's model would take it: a pydantic argument."""

    sms_identifier: str
    user_id: int
    type: MessageType
    text: str
    recipients: list[str]
    unit_share: int
    accepted_at: str | None = None
    trace: dict[str, str] = {}


async def fill(queue: str, count: int) -> None:
    body = codec.encode(DeliveryJob(
        "sms-bench", 7, MessageType.NORMAL, "hello there", ("09121234567",), 1
    ))
    connection = await aio_pika.connect_robust(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        for start in range(0, count, 500):
            await asyncio.gather(*(
                channel.default_exchange.publish(
                    aio_pika.Message(body, content_type="application/json",
                                     message_id=str(n)), routing_key=queue)
                for n in range(start, min(start + 500, count))
            ))


async def drain(queue: str, count: int, build: str) -> tuple[float, float]:
    """Seconds of wall time and of CPU to consume `count` messages."""
    done = asyncio.Event()
    seen = 0

    def one() -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    # As the gateway's brokers: the per-message "Received"/"Processed" lines at DEBUG.
    broker = RabbitBroker(URL, apply_types=build == "faststream", graceful_timeout=None,
                          log_level=logging.DEBUG)
    target = RabbitQueue(queue, durable=True)
    if build == "ours":
        async def raw(message: Any) -> Any:
            return message

        @broker.subscriber(target, ack_policy=AckPolicy.MANUAL, decoder=raw, no_reply=True)
        async def ours(message: RabbitMessage) -> None:
            codec.decode(message.body)
            one()
            await message.ack()
    else:
        @broker.subscriber(target, ack_policy=AckPolicy.REJECT_ON_ERROR, no_reply=True)
        async def faststream(body: Body) -> None:
            one()

    wall, cpu = time.perf_counter(), time.process_time()
    await broker.start()
    await done.wait()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await broker.stop()
    return wall, cpu


async def main(messages: int, rounds: int) -> None:
    queue = f"bench_faststream_{uuid.uuid4().hex[:8]}"
    results: dict[str, list[tuple[float, float]]] = {"ours": [], "faststream": []}
    try:
        for _ in range(rounds):
            for build in results:
                await fill(queue, messages)
                results[build].append(await drain(queue, messages, build))
    finally:
        connection = await aio_pika.connect_robust(URL)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(queue)
    for build, runs in results.items():
        rate = statistics.median(messages / wall for wall, _ in runs)
        cpu_us = statistics.median(cpu / messages * 1e6 for _, cpu in runs)
        print(f"{build:>10}: {rate:8.0f} msg/s, {cpu_us:6.1f} µs CPU per message "
              f"(median of {rounds} rounds of {messages})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.rounds))
