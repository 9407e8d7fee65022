"""The embedded bus: express ahead of waiting normal deliveries, bounded, in order."""

from __future__ import annotations

import asyncio

from smsgw_adapters.inprocess import InProcessBus
from smsgw_core.messages import MessageType
from smsgw_core.outbox import DeliveryJob


def delivery(sms: str, kind: MessageType) -> DeliveryJob:
    return DeliveryJob(sms, 1, kind, "hi", ("09121234567",), 1)


async def test_express_is_taken_before_waiting_normal_deliveries() -> None:
    bus = InProcessBus()
    await bus.publish([delivery(f"n{i}", MessageType.NORMAL) for i in range(3)])
    await bus.publish([delivery("e1", MessageType.EXPRESS), delivery("e2", MessageType.EXPRESS)])
    taken = [(await bus.take()).sms_identifier for _ in range(5)]
    assert taken == ["e1", "e2", "n0", "n1", "n2"]  # FIFO within a priority


async def test_a_full_bus_makes_the_publisher_wait() -> None:
    bus = InProcessBus(capacity=2)
    await bus.publish([delivery("a", MessageType.NORMAL), delivery("b", MessageType.NORMAL)])
    publishing = asyncio.Event()

    async def publish_express() -> None:
        publishing.set()
        await bus.publish([delivery("e", MessageType.EXPRESS)])

    async def take_after_it() -> tuple[dict[MessageType, int], DeliveryJob]:
        return await bus.backlog(), await bus.take()

    blocked = asyncio.create_task(publish_express())
    # Scheduled after the publisher's first step, so it has had its turn: an express
    # delivery on the bus would be taken ahead of the normal ones.
    backlog, first = await asyncio.create_task(take_after_it())
    assert publishing.is_set()
    assert backlog == {MessageType.NORMAL: 2, MessageType.EXPRESS: 0}
    assert first.sms_identifier == "a"
    bus.done()
    await asyncio.wait_for(blocked, 1)
    assert await bus.backlog() == {MessageType.NORMAL: 1, MessageType.EXPRESS: 1}
    assert (await bus.take()).sms_identifier == "e"
