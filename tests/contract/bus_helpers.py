"""The bus backends' shared pieces: a RabbitMQ backend on queues of its own, and waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import pytest
from tests.services import RABBITMQ_URL, need_rabbitmq, unique_name

from smsgw_adapters.rabbit import RabbitBus, RabbitConsumer, RabbitTopology
from smsgw_core.backoff import Backoff
from smsgw_core.outbox import DeliveryJob

Handler = Callable[[DeliveryJob], Awaitable[object]]
WAIT_S = 15.0  # bound on any wait for something that should happen


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait until `check()` holds, polling: the tests watch state, not events."""
    try:
        async with asyncio.timeout(WAIT_S):
            while not check():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"not within {WAIT_S} s: {what}")


@dataclass
class RabbitBackend:
    topology: RabbitTopology
    bus: RabbitBus
    consumers: list[RabbitConsumer] = field(default_factory=list)

    def consumer(
        self, handler: Handler, *, express_workers: int = 1, normal_workers: int = 1,
        retry_delay: float = 0.02,
    ) -> RabbitConsumer:
        made = RabbitConsumer(
            self.bus, handler,
            express_workers=express_workers, normal_workers=normal_workers,
            redelivery=Backoff(first=retry_delay, ceiling=0.2),
            connection_name=f"{self.topology.normal_queue}-consumer-{len(self.consumers)}",
            reconnect_interval=0.3,
        )
        self.consumers.append(made)
        return made


def topology_of_this_test(**overrides: Any) -> RabbitTopology:
    name = unique_name("bus")
    return RabbitTopology(
        normal_queue=f"{name}_normal", express_queue=f"{name}_express",
        dead_letter_queue=f"{name}_dead", **overrides,
    )


@contextlib.asynccontextmanager
async def rabbit_backend(bundle: int = 1, **overrides: Any) -> AsyncIterator[RabbitBackend]:
    need_rabbitmq()
    topology = topology_of_this_test(**overrides)
    bus = RabbitBus(
        RABBITMQ_URL, topology, connection_name=f"{topology.normal_queue}-publisher",
        reconnect_interval=0.3, bundle=bundle,
    )
    backend = RabbitBackend(topology, bus)
    try:
        await bus.start()
        yield backend
    finally:
        for consumer in backend.consumers:
            with contextlib.suppress(Exception):
                await consumer.stop(timeout=1)
        with contextlib.suppress(Exception):
            await bus.close()
        await delete_queues(topology)


async def delete_queues(topology: RabbitTopology) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        for name in (*topology.work_queues, topology.dead_letter_queue):
            channel = await connection.channel()  # a failed delete closes its channel
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.queue_delete(name)
