"""The embedded consumer and the outbox janitor: nothing they handle waits unnoticed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core_world import World

from smsgw_adapters.inprocess import InProcessBus, InProcessConsumer
from smsgw_app.workers import OutboxJanitor
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.outbox import DeliveryJob
from smsgw_core.services.accounts import TopUp
from smsgw_core.services.send_sms import SendSms


def _delivery(sms: str) -> DeliveryJob:
    return DeliveryJob(sms, 1, MessageType.NORMAL, "hi", ("09120000001",), 1)


async def test_a_delivery_that_raised_goes_back_on_the_bus_and_is_handled() -> None:
    bus = InProcessBus()
    handled: list[str] = []
    done = asyncio.Event()
    failures = [RuntimeError("database away")]

    async def deliver(delivery: DeliveryJob) -> None:
        if failures:
            raise failures.pop()
        handled.append(delivery.sms_identifier)
        done.set()

    consumer = InProcessConsumer(bus, deliver, express_workers=0, normal_workers=1)
    await consumer.start()
    await bus.publish([_delivery("sms-1")])
    async with asyncio.timeout(10):
        await done.wait()
    await consumer.stop()
    assert handled == ["sms-1"]
    assert sum((await bus.backlog()).values()) == 0


async def test_the_janitor_asks_the_bus_before_redriving_a_waiting_message() -> None:
    world = World()
    await world.accounts.top_up(TopUp(1, 10))
    await world.sender.send(SendSms(1, "hi", ("09120000001",)))
    await world.relay.relay_once()  # published; the message sits in its queue
    world.clock.advance(timedelta(minutes=5))
    lanes: list[list[MessageType]] = [[], list(MessageType)]  # queue busy, then empty

    async def quiet() -> list[MessageType]:
        return lanes.pop(0)

    janitor = OutboxJanitor(world.relay, redrive_after=timedelta(minutes=1),
                            retention=timedelta(hours=1), redrive_at_start=False,
                            quiet_lanes=quiet)
    await janitor._redrive(janitor.redrive_after)
    assert [r.status for r in world.db.state.outbox.values()] == ["published"]
    await janitor._redrive(janitor.redrive_after)
    assert [r.status for r in world.db.state.outbox.values()] == ["pending"]
    assert [m.status for m in world.messages()] == [SmsStatus.PENDING]
