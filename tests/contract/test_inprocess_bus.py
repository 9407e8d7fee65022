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
    blocked = asyncio.create_task(bus.publish([delivery("c", MessageType.NORMAL)]))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    assert await bus.backlog() == {MessageType.NORMAL: 2, MessageType.EXPRESS: 0}
    assert (await bus.take()).sms_identifier == "a"
    bus.done()
    await asyncio.wait_for(blocked, 1)
    assert await bus.backlog() == {MessageType.NORMAL: 2, MessageType.EXPRESS: 0}
