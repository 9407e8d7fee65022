"""How the container builds each adapter and service from the settings.

Plain functions over plain objects: which of them a process gets is the
container's choice (container.py), never decided here; an operator's adapter
is its URL scheme's row of operator_kinds.KINDS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection
from datetime import timedelta
from pathlib import Path

import aiohttp
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.bus import Bus, Consumer, DeliveryHandler
from smsgw_adapters.inprocess import QUEUES, InProcessBus, InProcessConsumer
from smsgw_adapters.observability import Metrics, tracing
from smsgw_adapters.rabbit import RabbitBus, RabbitConsumer, RabbitTopology
from smsgw_adapters.sql.engine import (
    probe,
)
from smsgw_adapters.webhooks.address_guard import Guard
from smsgw_adapters.webhooks.secret_box import AesSecretBox, key_file, parse_keys
from smsgw_adapters.webhooks.sender import HttpWebhookSender
from smsgw_app.api.app import ApiServices, create_app
from smsgw_app.api.backpressure import BacklogGate
from smsgw_app.api.health import ReadinessCheck
from smsgw_app.config import Settings, StartupError
from smsgw_app.http_protocol import guarded_protocol
from smsgw_app.operator_kinds import OperatorLinks, OperatorTools, build_operator
from smsgw_app.supervisor import HttpServer, Service
from smsgw_app.wakeup import Wakeup
from smsgw_app.workers import (
    EXPRESS_POLL_S,
    POLL_S,
    BacklogMonitor,
    BacklogSink,
    ConsumerService,
    OutboxJanitor,
    QuietLanes,
    RelayService,
    WebhookService,
)
from smsgw_core.fairness import FairShare, Headroom
from smsgw_core.messages import MessageType
from smsgw_core.ports import Clock, Operator, OperatorCapacity, ReceiptSink, UnitOfWorkFactory
from smsgw_core.receipts import ReceiptPolicy
from smsgw_core.services.pacing import PacedOperator
from smsgw_core.services.receipts import ReceiptIntake
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.webhook_delivery import WebhookDelivery, WebhookTelemetry
from smsgw_core.validity import DeliveryPolicy

__all__ = ["ApiServices"]

ADMISSION_REFRESH_S = 1.0  # how stale the API's backpressure figure may be
GAUGE_REFRESH_S = 5.0  # the backlog gauges: a scrape interval's worth


# ---- adapters ----------------------------------------------------------------------------


def bus_kind(settings: Settings) -> str:
    return "inprocess" if settings.embedded_bus else "rabbitmq"


def inprocess_bus(metrics: Metrics) -> InProcessBus:
    return InProcessBus(observer=metrics.queues.declare(QUEUES.values()))


def topology(settings: Settings) -> RabbitTopology:
    return RabbitTopology(
        normal_queue=settings.normal_queue, express_queue=settings.express_queue,
        dead_letter_queue=settings.dead_letter_queue, prefetch=settings.prefetch,
        delivery_limit=settings.delivery_limit,
    )


def rabbit_bus(settings: Settings, metrics: Metrics) -> RabbitBus:
    queues = topology(settings)
    return RabbitBus(settings.broker_url, queues,
                     observer=metrics.queues.declare(queues.work_queues),
                     trace_fields=tracing.propagated_fields(),
                     bundle=settings.publish_bundle)


async def connected(bus: Bus) -> AsyncIterator[Bus]:
    """The bus connected (RabbitMQ: the publisher's connection) and closed at shutdown."""
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


async def closing(client: aiohttp.ClientSession, links: OperatorLinks | None = None,
                  ) -> AsyncIterator[aiohttp.ClientSession]:
    """The operators' HTTP client, closed at shutdown with the connections operators
    keep (SMPP binds: unbound first)."""
    try:
        yield client
    finally:
        if links is not None:
            await links.close()
        await client.close()


def inprocess_consumer(
    bus: InProcessBus, settings: Settings, handler: DeliveryHandler
) -> InProcessConsumer:
    # One priority queue, express taken first by every worker: SMSGW_WORKERS in all.
    return InProcessConsumer(bus, handler, express_workers=0, normal_workers=settings.workers)


def rabbit_consumer(
    bus: RabbitBus, settings: Settings, metrics: Metrics, handler: DeliveryHandler,
    lanes: Collection[MessageType] = frozenset(MessageType),
) -> RabbitConsumer:
    """Both lanes, or one (`smsgw worker --lane`), each with its own pool of workers."""
    return RabbitConsumer(
        bus, handler,
        express_workers=settings.express_workers if MessageType.EXPRESS in lanes else 0,
        normal_workers=settings.workers if MessageType.NORMAL in lanes else 0,
        observer=metrics.queues.declare(bus.topology.work_queues),
        trace_fields=tracing.propagated_fields(),
    )


def build_operators(settings: Settings, client: aiohttp.ClientSession,
                    capacity: OperatorCapacity, receipts: ReceiptSink | None = None,
                    links: OperatorLinks | None = None,
                    metrics: Metrics | None = None) -> list[Operator]:
    """The operators in failover order, each of its kind (operator_kinds.KINDS by the
    URL's scheme) and each decorated alike, outermost first: the throughput cap
    (PacedOperator, when the URL has tps=), then the span and delivery log line.
    Receipts an adapter gets itself go to `receipts`; the connections it keeps open
    (SMPP binds) are closed with `links`; `metrics` reads an SMPP operator's binds."""
    tools = OperatorTools(http_client=client, timeout_s=settings.operator_timeout_s,
                          receipts=receipts, links=links or OperatorLinks())
    operators: list[Operator] = []
    for spec in settings.operators:
        built = build_operator(spec, tools)
        if metrics is not None:
            metrics.watch_operator(built)
        # Every try: a client span when tracing, and a delivery log line.
        operator: Operator = tracing.TracedOperator(built)
        if spec.tps is not None:
            # Outside the span: waiting for a slot is not the operator's time.
            operator = PacedOperator(operator, capacity, spec.tps, time.monotonic)
        operators.append(operator)
    return operators


def receipt_policy_of(settings: Settings) -> ReceiptPolicy:
    return ReceiptPolicy(refund_undelivered=settings.refund_undelivered,
                         orphan_ttl=timedelta(seconds=settings.receipt_orphan_ttl_s))


def kept_receipts(settings: Settings, policy: ReceiptPolicy) -> ReceiptPolicy | None:
    """What a worker applies kept receipts by, or None when no operator reports any
    (none can be kept): an outcome then does not look for them."""
    reports = any(spec.receipt_token or "receipts" in spec.params()
                  or spec.scheme in ("smpp", "smpps") for spec in settings.operators)
    return policy if reports else None


def receipt_tokens(settings: Settings) -> dict[str, str]:
    """Each operator that may post receipts, and the token it must send."""
    return {spec.name: spec.receipt_token for spec in settings.operators if spec.receipt_token}


def delivery_policy_of(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(validity=timedelta(seconds=settings.message_ttl_s),
                          lease=timedelta(seconds=settings.delivery_lease_s))


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> str | None:
        return await probe(engine)
    return check


def broker_check(bus: Bus) -> ReadinessCheck:
    async def check() -> str | None:
        return None if bus.is_connected() else "not connected"
    return check


def quiet_lanes(bus: Bus) -> QuietLanes:
    """The lanes whose queue holds no message waiting for a worker, asked of the bus."""
    async def quiet() -> Collection[MessageType]:
        ready = await bus.backlog()
        return [kind for kind in MessageType if ready.get(kind, 0) == 0]
    return quiet


# ---- services ----------------------------------------------------------------------------


def http_server(settings: Settings, services: ApiServices, host: str, port: int) -> Service:
    return HttpServer(uvicorn.Config(
        create_app(services), host=host, port=port, log_level=settings.log_level.lower(),
        access_log=False, lifespan="on",
        log_config=None,  # uvicorn's lines go through the process's (JSON) handler
        # uvicorn's own timeouts stop at idle keep-alive: see http_protocol.py
        http=guarded_protocol(settings.http_request_timeout_s),
        # uvicorn counts the connection asking among the open ones: N open ones are served
        limit_concurrency=settings.http_max_connections + 1,
        timeout_keep_alive=settings.http_idle_timeout_s,  # type: ignore[arg-type]
    ))


def relay_services(
    settings: Settings, relay: Callable[..., OutboxRelay], wakeup: Wakeup, bus: Bus,
    receipts: ReceiptIntake | None = None,
) -> list[Service]:
    """The relay pools (one per lane) and the outbox janitor (which also drops the
    receipts kept past the orphan time)."""
    services: list[Service] = []
    # Normal traffic in a fair order across customers, decided at the outbox (its
    # queue kept short) by the lane's relays of this process in turns, with one
    # order and one headroom; express oldest first, all of it at once.
    fair_lane = {"fair": FairShare(), "headroom": Headroom(settings.relay_ahead),
                 "turn": asyncio.Lock()}
    for lane, size in ((MessageType.EXPRESS, settings.relay_express_workers),
                       (MessageType.NORMAL, settings.relay_normal_workers)):
        express = lane is MessageType.EXPRESS
        poll = EXPRESS_POLL_S if express else POLL_S
        for n in range(size):
            lane_relay = relay(lane=lane, chunk=settings.delivery_chunk,
                               **({} if express else fair_lane))
            services.append(RelayService(f"relay-{lane.value}-{n}", lane_relay, wakeup, poll))
    services.append(OutboxJanitor(
        relay(),
        redrive_after=timedelta(seconds=settings.redrive_after_s),
        retention=timedelta(seconds=settings.outbox_retention_s),
        redrive_at_start=settings.embedded_bus,
        quiet_lanes=quiet_lanes(bus),
        orphans=receipts.expire_orphans if receipts is not None else None,
    ))
    return services


def delivery_services(settings: Settings, consumer: Consumer) -> list[Service]:
    return [ConsumerService(consumer, settings.shutdown_timeout_s)]


def backlog_monitor(
    uow: UnitOfWorkFactory, clock: Clock, metrics: Metrics, gate: BacklogGate,
    *, gauges: bool, admission: bool,
) -> list[Service]:
    """The outbox backlog reading for the gauges and/or the API's backpressure gate."""
    sinks: list[BacklogSink] = []
    if admission and gate.enabled:
        sinks.append(gate.update)
    if gauges:
        sinks.append(metrics.outbox_backlog)
    if not sinks:
        return []
    every = ADMISSION_REFRESH_S if admission and gate.enabled else GAUGE_REFRESH_S
    return [BacklogMonitor(uow, clock, sinks, every)]




# ---- webhooks ----------------------------------------------------------------------------


def secret_box(settings: Settings) -> AesSecretBox:
    """The sealing box of webhook secrets: SMSGW_WEBHOOK_KEY, or the key file (made on
    first use). Built only by the processes that register or send webhooks."""
    try:
        if settings.webhook_key:
            return AesSecretBox(parse_keys(settings.webhook_key))
        return AesSecretBox([key_file(Path(settings.webhook_key_file))])
    except ValueError as exc:
        raise StartupError(f"SMSGW_WEBHOOK_KEY_FILE: {exc}") from None


def webhook_guard(settings: Settings) -> Guard:
    return Guard(allow_http=settings.webhook_allow_http,
                 allow_private=settings.webhook_allow_private)


def webhook_services(settings: Settings, uow: UnitOfWorkFactory, clock: Clock,
                     box: AesSecretBox, telemetry: WebhookTelemetry) -> list[Service]:
    sender = HttpWebhookSender(webhook_guard(settings), timeout_s=settings.webhook_timeout_s,
                               max_idle=2 * settings.webhook_concurrency)
    delivery = WebhookDelivery(
        uow, clock, sender, box, telemetry, concurrency=settings.webhook_concurrency,
        per_customer=settings.webhook_per_customer,
        lease=timedelta(seconds=settings.webhook_timeout_s + 30),
        retries=tuple(timedelta(seconds=s) for s in settings.webhook_retry_s))
    return [WebhookService(delivery, sender.close)]
