"""The bus contract: what the relay and the workers may rely on, whichever bus carries deliveries.

The shared tests run against the in-process bus and its consumer and against
RabbitMQ and its consumer: both offer one interface (smsgw_adapters.bus). What
only a broker can show (persistence, message ids, redelivery, dead-lettering,
confirms, reconnection) is tested on RabbitMQ alone. Every RabbitMQ test uses queues of its own,
deleted afterwards. Timeouts below only bound a failing wait; no assertion
depends on how fast anything is.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, DeliveryMode
from bus_helpers import (
    WAIT_S,
    Handler,
    RabbitBackend,
    eventually,
    rabbit_backend,
)
from contract_helpers import delivery
from tests.services import RABBITMQ_URL

from smsgw_adapters import codec
from smsgw_adapters.bus import Bus, Consumer
from smsgw_adapters.inprocess import InProcessBus, InProcessConsumer
from smsgw_adapters.rabbit import (
    DEAD_LETTER_REASON,
    DEAD_LETTER_SOURCE,
    PublishFailed,
    RabbitBus,
    RabbitTopology,
)
from smsgw_core.backoff import Backoff
from smsgw_core.messages import MessageType
from smsgw_core.outbox import DeliveryJob


class Backend(Protocol):
    bus: Bus

    def consumer(
        self, handler: Handler, *, express_workers: int = 1, normal_workers: int = 1,
        retry_delay: float = 0.02,
    ) -> Consumer: ...


async def waiting(bus: Bus) -> int:
    """Deliveries published and not (yet) handed to a consumer (at most)."""
    return sum((await bus.backlog()).values())


# ---- the in-process backend -------------------------------------------------------------


@dataclass
class InProcessBackend:
    bus: InProcessBus = field(default_factory=InProcessBus)
    consumers: list[InProcessConsumer] = field(default_factory=list)

    def consumer(
        self, handler: Handler, *, express_workers: int = 1, normal_workers: int = 1,
        retry_delay: float = 0.02,
    ) -> InProcessConsumer:
        made = InProcessConsumer(
            self.bus, handler, express_workers=express_workers, normal_workers=normal_workers,
            redelivery=Backoff(first=retry_delay, ceiling=retry_delay),
        )
        self.consumers.append(made)
        return made


@contextlib.asynccontextmanager
async def inprocess_backend() -> AsyncIterator[InProcessBackend]:
    backend = InProcessBackend()
    try:
        yield backend
    finally:
        for consumer in backend.consumers:
            await consumer.stop(timeout=1)


# ---- the RabbitMQ backend ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def raw_channel() -> AsyncIterator[AbstractChannel]:
    """A plain aio-pika channel, to see and send what the adapter would not."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        yield await connection.channel()


async def get_all(channel: AbstractChannel, queue: str) -> list[AbstractIncomingMessage]:
    declared = await channel.declare_queue(queue, passive=True)
    found = []
    while (message := await declared.get(no_ack=True, fail=False)) is not None:
        found.append(message)
    return found


async def consumers_of(topology: RabbitTopology) -> dict[str, int]:
    """The broker's count of consumers on each work queue."""
    async with raw_channel() as channel:
        found = {}
        for lane, name in (("express", topology.express_queue), ("normal", topology.normal_queue)):
            declared = await channel.declare_queue(name, passive=True)
            found[lane] = declared.declaration_result.consumer_count or 0
        return found


async def first_dead_letters(
    channel: AbstractChannel, topology: RabbitTopology,
) -> list[AbstractIncomingMessage]:
    """What the dead-letter queue holds once something arrived (within WAIT_S)."""
    dead: list[AbstractIncomingMessage] = []

    async def arrived() -> None:
        while not dead:
            dead.extend(await get_all(channel, topology.dead_letter_queue))
            await asyncio.sleep(0.02)

    await asyncio.wait_for(arrived(), WAIT_S)
    return dead


@pytest.fixture(params=["inprocess", "rabbitmq", "rabbitmq-bundles"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "inprocess":
        async with inprocess_backend() as inprocess:
            yield inprocess
        return
    # Bundles of 5 recipients: a batch's deliveries share messages, whole and partial.
    async with rabbit_backend(bundle=5 if request.param == "rabbitmq-bundles" else 1) as rabbit:
        yield rabbit


@pytest.fixture
async def rabbit() -> AsyncIterator[RabbitBackend]:
    async with rabbit_backend() as found:
        yield found


@dataclass
class Recorder:
    """A handler that records what it handled, optionally slowly or failing first."""

    handled: list[DeliveryJob] = field(default_factory=list)
    pause_s: float = 0.0
    failures_left: int = 0
    attempts: list[DeliveryJob] = field(default_factory=list)
    normal_gate: asyncio.Event | None = None  # normal deliveries wait for it

    async def __call__(self, found: DeliveryJob) -> None:
        self.attempts.append(found)
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RuntimeError("the database is down")
        if self.normal_gate is not None and found.type is MessageType.NORMAL:
            await self.normal_gate.wait()
        if self.pause_s:
            await asyncio.sleep(self.pause_s)
        self.handled.append(found)


def normal(sms: str) -> DeliveryJob:
    return delivery(sms, "+989120000001", "+989120000002")


def express(sms: str) -> DeliveryJob:
    return delivery(sms, "+989120000003", type=MessageType.EXPRESS)


# ---- the shared contract -----------------------------------------------------------------


async def test_a_delivery_is_handled_once_and_arrives_equal(backend: Backend) -> None:
    sent = normal("one")
    recorder = Recorder()
    consumer = backend.consumer(recorder)
    await consumer.start()
    await backend.bus.publish([sent])
    await eventually(lambda: len(recorder.handled) == 1, "the delivery was handled")
    await consumer.stop(timeout=5)
    assert recorder.handled == [sent]
    assert await waiting(backend.bus) == 0  # acked: nothing came back for redelivery


async def test_express_and_normal_are_both_delivered(backend: Backend) -> None:
    sent = [normal(f"n{i}") for i in range(5)] + [express(f"e{i}") for i in range(5)]
    recorder = Recorder()
    consumer = backend.consumer(recorder, express_workers=2, normal_workers=2)
    await consumer.start()
    await backend.bus.publish(sent)
    await eventually(lambda: len(recorder.handled) == len(sent), "all were handled")
    await consumer.stop(timeout=5)
    assert sorted(recorder.handled, key=lambda d: d.sms_identifier) == sorted(
        sent, key=lambda d: d.sms_identifier
    )


async def test_express_overtakes_a_normal_backlog(backend: Backend) -> None:
    # The normal handlers wait until the express one is published, so the backlog
    # is really there when it arrives, however fast or slow this machine is.
    recorder = Recorder(pause_s=0.005, normal_gate=asyncio.Event())
    consumer = backend.consumer(recorder, express_workers=1, normal_workers=1)
    await consumer.start()
    await backend.bus.publish([normal(f"n{i}") for i in range(200)])
    await backend.bus.publish([express("urgent")])
    assert recorder.normal_gate is not None
    recorder.normal_gate.set()
    await eventually(lambda: len(recorder.handled) == 201, "everything was handled")
    await consumer.stop(timeout=5)
    order = [d.sms_identifier for d in recorder.handled]
    normals_before = order.index("urgent")
    assert normals_before < 100, f"express waited for {normals_before} of 200 normal deliveries"


async def test_stop_lets_an_in_flight_handler_finish_and_takes_nothing_new(
    backend: Backend,
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []  # the handler's end and stop()'s return, as they happened

    async def slow(found: DeliveryJob) -> None:
        started.set()
        await release.wait()
        order.append(f"{found.sms_identifier} finished")

    consumer = backend.consumer(slow)
    await consumer.start()
    await backend.bus.publish([normal("in-flight")])
    await asyncio.wait_for(started.wait(), WAIT_S)

    async def stop() -> None:
        await consumer.stop(timeout=WAIT_S)
        order.append("stop returned")  # in the same step as the return: nothing between

    stopping = asyncio.create_task(stop())
    release.set()  # the handler can only end after stop() has begun
    await stopping
    assert order == ["in-flight finished", "stop returned"], "stop() did not wait"
    # Taken by nothing: a second consumer, started after the publish, gets it. Had
    # the first kept consuming it would have had it first; had the in-flight one
    # not been acked it would come back ahead of it.
    await backend.bus.publish([normal("after-stop")])
    second = Recorder()
    other = backend.consumer(second)
    await other.start()
    await eventually(lambda: bool(second.handled) or len(order) > 2, "someone took it")
    await other.stop(timeout=5)
    assert [d.sms_identifier for d in second.handled] == ["after-stop"]
    assert order == ["in-flight finished", "stop returned"]
    assert await waiting(backend.bus) == 0


async def test_stop_gives_a_running_handler_its_grace_then_cancels_it_before_returning(
    backend: Backend,
) -> None:
    started = asyncio.Event()
    order: list[str] = []  # the handler's end and stop()'s return, as they happened
    loop = asyncio.get_running_loop()
    cancelled_at: list[float] = []

    async def stuck(found: DeliveryJob) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled_at.append(loop.time())
            order.append("handler cancelled")
            raise

    consumer = backend.consumer(stuck)
    await consumer.start()
    await backend.bus.publish([normal("stuck")])
    await asyncio.wait_for(started.wait(), WAIT_S)
    grace, stop_called = 0.5, loop.time()
    await consumer.stop(timeout=grace)
    order.append("stop returned")
    # Both signals come from stop() itself, whatever this machine's speed: a stop()
    # that returned with the handler running would not have cancelled it first, and
    # one that cancelled it at once (as closing a RabbitMQ connection does) would have
    # cut its grace short. A slower machine only makes the handler live longer.
    assert order == ["handler cancelled", "stop returned"]
    assert cancelled_at[0] - stop_called >= grace


async def test_a_failing_handler_gets_the_message_again_until_it_succeeds(
    backend: Backend,
) -> None:
    sent = normal("retried")
    recorder = Recorder(failures_left=2)
    consumer = backend.consumer(recorder)
    await consumer.start()
    await backend.bus.publish([sent])
    await eventually(lambda: len(recorder.handled) == 1, "handled after the failures")
    await consumer.stop(timeout=5)
    # Redelivered twice: a message acked on failure would never have come back.
    assert recorder.attempts == [sent, sent, sent]
    assert recorder.handled == [sent]
    assert await backend.bus.backlog() == {MessageType.NORMAL: 0, MessageType.EXPRESS: 0}
    if isinstance(backend.bus, RabbitBus):
        assert await backend.bus.dead_letters() == 0


# ---- RabbitMQ only -----------------------------------------------------------------------


async def test_messages_are_persistent_json_with_the_sms_id_as_message_id(
    rabbit: RabbitBackend,
) -> None:
    sent = normal("stable")
    await rabbit.bus.publish([sent])
    await rabbit.bus.publish([sent])  # a relay retry: the same id again
    async with raw_channel() as channel:
        found = await get_all(channel, rabbit.topology.normal_queue)
    assert len(found) == 2
    for message in found:
        assert message.delivery_mode == DeliveryMode.PERSISTENT
        assert message.message_id == "stable"
        assert message.content_type == "application/json"
        assert codec.decode(message.body) == sent


async def test_a_batch_goes_in_bundles_of_one_queue_each_in_order() -> None:
    async with rabbit_backend(bundle=3) as rabbit:
        singles = [delivery(f"n{i}", "+989120000001") for i in range(7)]
        pair, large = normal("pair"), delivery("large", *(f"+98912000001{i}" for i in range(4)))
        expresses = [express("e0"), express("e1")]
        await rabbit.bus.publish([*singles[:4], *expresses, *singles[4:], pair, large])
        async with raw_channel() as channel:
            found = await get_all(channel, rabbit.topology.normal_queue)
            fast = await get_all(channel, rabbit.topology.express_queue)
    # At most 3 recipients a message; the 4-recipient delivery alone.
    assert [codec.decode_many(m.body) for m in found] == [
        singles[:3], singles[3:6], [singles[6], pair], [large]]
    assert [m.message_id for m in found] == ["n0+2", "n3+2", "n6+1", "large"]
    assert found[3].body == codec.encode(large)  # a lone delivery: the plain object
    assert [codec.decode_many(m.body) for m in fast] == [expresses]
    for message in (*found, *fast):
        assert message.delivery_mode == DeliveryMode.PERSISTENT


async def test_a_bundle_is_acked_once_every_delivery_succeeded_and_redelivered_whole_if_not(
) -> None:
    async with rabbit_backend(bundle=6) as rabbit:
        attempts: list[str] = []
        failures = {"b": 1}  # the middle one fails once

        async def handler(found: DeliveryJob) -> None:
            attempts.append(found.sms_identifier)
            if failures.get(found.sms_identifier, 0) > 0:
                failures[found.sms_identifier] -= 1
                raise RuntimeError("the database is down")

        consumer = rabbit.consumer(handler)
        await consumer.start()
        await rabbit.bus.publish([normal("a"), normal("b"), normal("c")])
        await eventually(lambda: len(attempts) == 6, "the bundle came back once")
        # One worker, prefetching one message: a marker published now reaches it only
        # once the bundle's message is settled, and a bundle requeued again would be
        # handled again before the consumer stops or be found waiting after.
        await rabbit.bus.publish([normal("marker")])
        await eventually(lambda: "marker" in attempts, "the marker behind the bundle")
        await consumer.stop(timeout=5)
        attempts.remove("marker")
        assert sorted(attempts) == ["a", "a", "b", "b", "c", "c"]
        assert await waiting(rabbit.bus) == 0
        assert await rabbit.bus.dead_letters() == 0


@pytest.mark.parametrize(
    "body", [b"[]", b'[{"hello": 1}]', b"[" + codec.encode(normal("x")) + b", 7]"])
async def test_a_bundle_that_is_not_all_deliveries_is_dead_lettered(
    rabbit: RabbitBackend, body: bytes,
) -> None:
    recorder = Recorder()
    consumer = rabbit.consumer(recorder)
    await consumer.start()
    async with raw_channel() as channel:
        await channel.default_exchange.publish(
            aio_pika.Message(body, content_type="application/json", message_id="odd"),
            routing_key=rabbit.topology.normal_queue,
        )
        dead = await first_dead_letters(channel, rabbit.topology)
    await consumer.stop(timeout=5)
    assert recorder.attempts == []  # not even the good one of a bad bundle
    assert "not a delivery" in str(dead[0].headers[DEAD_LETTER_REASON])


async def test_each_type_goes_to_its_own_queue(rabbit: RabbitBackend) -> None:
    await rabbit.bus.publish([normal("n"), express("e"), express("e2")])
    backlog = await rabbit.bus.backlog()
    assert backlog == {MessageType.NORMAL: 1, MessageType.EXPRESS: 2}
    assert await rabbit.bus.dead_letters() == 0


async def test_a_consumer_of_one_lane_leaves_the_other_queue_alone(
    rabbit: RabbitBackend,
) -> None:
    # `smsgw worker --lane express`: a process of its own for express.
    with pytest.raises(ValueError, match="at least one worker"):
        rabbit.consumer(Recorder(), express_workers=0, normal_workers=0)
    seen = Recorder()
    consumer = rabbit.consumer(seen, express_workers=2, normal_workers=0)
    await consumer.start()
    # The broker's own count, not a wait: nothing consumes the normal queue, so
    # nothing can ever take what is published to it.
    assert await consumers_of(rabbit.topology) == {"express": 1, "normal": 0}
    await rabbit.bus.publish([normal("n"), express("e")])
    await eventually(lambda: [d.sms_identifier for d in seen.handled] == ["e"], "express")
    assert [d.sms_identifier for d in seen.handled] == ["e"]
    assert (await rabbit.bus.backlog())[MessageType.NORMAL] == 1


async def test_a_message_that_keeps_failing_is_dead_lettered_at_the_delivery_limit() -> None:
    async with rabbit_backend(delivery_limit=2) as rabbit:
        recorder = Recorder(failures_left=1000)
        consumer = rabbit.consumer(recorder)
        await consumer.start()
        await rabbit.bus.publish([normal("hopeless")])
        async with raw_channel() as channel:
            dead = await first_dead_letters(channel, rabbit.topology)
        assert len(recorder.attempts) == 3  # the first delivery and two redeliveries
        assert recorder.handled == []
        [message] = dead
        assert message.message_id == "hopeless"
        deaths = message.headers["x-death"]
        assert isinstance(deaths, list) and len(deaths) == 1
        assert isinstance(deaths[0], dict) and deaths[0]["reason"] == "delivery_limit"


async def test_a_poison_message_is_dead_lettered_with_its_reason(rabbit: RabbitBackend) -> None:
    recorder = Recorder()
    consumer = rabbit.consumer(recorder)
    await consumer.start()
    async with raw_channel() as channel:
        for body, message_id in ((b"not json at all", "garbage"), (b'{"hello": 1}', "stranger")):
            await channel.default_exchange.publish(
                aio_pika.Message(body, content_type="application/json", message_id=message_id),
                routing_key=rabbit.topology.normal_queue,
            )
        await rabbit.bus.publish([normal("fine")])  # behind them in the same queue
        await eventually(lambda: len(recorder.handled) == 1, "the good one was handled")
        dead: dict[str, AbstractIncomingMessage] = {}

        async def both_arrived() -> None:
            while len(dead) < 2:
                for message in await get_all(channel, rabbit.topology.dead_letter_queue):
                    dead[str(message.message_id)] = message
                await asyncio.sleep(0.02)

        await asyncio.wait_for(both_arrived(), WAIT_S)
    await consumer.stop(timeout=5)
    assert [d.sms_identifier for d in recorder.attempts] == ["fine"]  # never the poison
    assert dead["garbage"].body == b"not json at all"
    assert "not JSON" in str(dead["garbage"].headers[DEAD_LETTER_REASON])
    assert "not a delivery" in str(dead["stranger"].headers[DEAD_LETTER_REASON])
    for message in dead.values():
        assert message.headers[DEAD_LETTER_SOURCE] == rabbit.topology.normal_queue
    assert await waiting(rabbit.bus) == 0  # acked once dead-lettered: not requeued hot


async def test_publishing_to_a_missing_queue_raises(rabbit: RabbitBackend) -> None:
    async with raw_channel() as channel:
        await channel.queue_delete(rabbit.topology.normal_queue)
    with pytest.raises(PublishFailed, match="NO_ROUTE"):
        await rabbit.bus.publish([express("routable"), normal("unroutable")])
    await rabbit.bus.publish([express("still-fine")])


async def test_a_publish_the_broker_refuses_raises() -> None:
    async with rabbit_backend(max_length=1) as rabbit:
        # A full quorum queue nacks new publishes (3.10 lets the length reach one over).
        refused: list[PublishFailed] = []
        for n in range(5):
            try:
                await rabbit.bus.publish([normal(f"n{n}")])
            except PublishFailed as exc:
                refused.append(exc)
                break
        assert refused and "1 of 1 deliveries not confirmed" in str(refused[0])
        assert (await rabbit.bus.backlog())[MessageType.NORMAL] <= 2
        await rabbit.bus.publish([express("other queue")])  # the bus itself is fine


async def test_stop_with_a_stuck_handler_leaves_its_message_for_a_new_consumer(
    rabbit: RabbitBackend,
) -> None:
    started = asyncio.Event()

    async def stuck(found: DeliveryJob) -> None:
        started.set()
        await asyncio.Event().wait()

    first = rabbit.consumer(stuck)
    await first.start()
    await rabbit.bus.publish([normal("stuck")])
    await asyncio.wait_for(started.wait(), WAIT_S)
    await first.stop(timeout=0.1)
    recorder = Recorder()
    second = rabbit.consumer(recorder)
    await second.start()
    await eventually(lambda: len(recorder.handled) == 1, "redelivered to the new consumer")
    await second.stop(timeout=5)
    assert [d.sms_identifier for d in recorder.handled] == ["stuck"]


def connections_named(prefix: str) -> list[str]:
    """Pids of this machine's RabbitMQ connections whose client-provided name has `prefix`."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return [line.split("\t")[0] for line in listed.splitlines() if f'"{prefix}' in line]


async def test_publisher_and_consumer_reconnect_after_their_connections_are_closed(
    rabbit: RabbitBackend,
) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is needed to close a connection from the server side")
    recorder = Recorder()
    consumer = rabbit.consumer(recorder)
    await consumer.start()
    await rabbit.bus.publish([normal("before")])
    await eventually(lambda: len(recorder.handled) == 1, "handled before the cut")
    ours = rabbit.topology.normal_queue  # every connection of this test is named after it
    try:
        pids = await asyncio.to_thread(connections_named, ours)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"rabbitmqctl cannot list connections here: {exc}")
    assert len(pids) == 2, pids  # the publisher's and the consumer's
    for pid in pids:
        await asyncio.to_thread(
            subprocess.run, ["rabbitmqctl", "-q", "close_connection", pid, "contract test"],
            capture_output=True, timeout=60, check=True,
        )

    async def publish_once_reconnected() -> None:
        while True:
            try:
                await rabbit.bus.publish([normal("after")])
                return
            except Exception:
                await asyncio.sleep(0.1)

    await asyncio.wait_for(publish_once_reconnected(), WAIT_S)
    await eventually(lambda: len(recorder.handled) == 2, "handled after the reconnection")
    assert [d.sms_identifier for d in recorder.handled] == ["before", "after"]
    assert rabbit.bus.is_connected() and consumer.is_connected()
    new_pids = await asyncio.to_thread(connections_named, ours)
    assert len(new_pids) == 2 and not set(new_pids) & set(pids)
