"""The processes: which services each runs, over the container's adapters.

`serve` runs everything in one process; `api`, `relay` and `worker` run one
part each and scale out as separate processes (they need a real broker).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import uvicorn
import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.inprocess import InProcessBus
from smsgw_adapters.observability import Metrics, MetricsHttpServer, tracing
from smsgw_adapters.rabbit import RabbitBus, RabbitConsumer
from smsgw_adapters.sql.engine import create_engine, probe, upgrade_to_head
from smsgw_adapters.sql.uow import SqlUnitOfWork
from smsgw_app.api.app import ApiServices, create_app
from smsgw_app.api.backpressure import BacklogGate
from smsgw_app.api.health import ReadinessCheck
from smsgw_app.config import Settings, hide_password, mask_password
from smsgw_app.container import Container, resolve
from smsgw_app.http_protocol import guarded_protocol
from smsgw_app.supervisor import HttpServer, Service, supervise
from smsgw_app.workers import (
    EXPRESS_POLL_S,
    POLL_S,
    BacklogMonitor,
    BacklogSink,
    InProcessWorker,
    MetricsServer,
    OutboxJanitor,
    QuietLanes,
    RabbitWorker,
    RelayService,
)
from smsgw_core.messages import MessageType

log = logging.getLogger("smsgw")

ADMISSION_REFRESH_S = 1.0  # how stale the API's backpressure figure may be
GAUGE_REFRESH_S = 5.0  # the backlog gauges: a scrape interval's worth


def run(settings: Settings, main: Coroutine[Any, Any, None]) -> None:
    """Run a process's main coroutine on the configured event loop (SMSGW_EVENT_LOOP)."""
    if settings.event_loop == "uvloop":
        uvloop.run(main)  # libuv's loop: less CPU per socket event than asyncio's own
    else:
        asyncio.run(main)


class StartupError(Exception):
    """A dependency named by the configuration cannot be used (the CLI exits 2)."""


async def migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade_to_head(engine)
    except Exception as exc:
        raise StartupError(_cannot_use("SMSGW_DATABASE_URL", settings.database_url, exc)) from exc
    finally:
        await engine.dispose()
    log.info("database migrated to head")


def _cannot_use(variable: str, value: str, exc: Exception) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # Printed and logged: a URL's password must not be, nor any echo of it in the reason.
    return f"cannot use {variable}={mask_password(value)!r}: {hide_password(reason, value)}"


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[Container]:
    """The container with its resources (database, broker, HTTP clients) up."""
    container = Container(settings=settings)
    resources = (
        (container.engine, "SMSGW_DATABASE_URL", settings.database_url),
        (container.bus, "SMSGW_BROKER_URL", settings.broker_url),
        (container.http_client, "SMSGW_OPERATORS", ""),
    )
    try:
        for resource, variable, value in resources:
            try:
                await resource.init()  # type: ignore[misc]
            except Exception as exc:
                raise StartupError(_cannot_use(variable, value, exc)) from exc
        yield container
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> str | None:
        return await probe(engine)
    return check


def broker_check(bus: InProcessBus | RabbitBus) -> ReadinessCheck:
    async def check() -> str | None:
        if isinstance(bus, RabbitBus) and not bus.is_connected():
            return "not connected"
        return None
    return check


async def http_service(container: Container, host: str, port: int) -> Service:
    settings: Settings = container.settings()
    engine = await resolve(container.engine)
    bus = await resolve(container.bus)
    app = create_app(ApiServices(
        await resolve(container.sender), await resolve(container.history),
        await resolve(container.accounts),
        {"database": database_check(engine), "broker": broker_check(bus)},
        container.admission(),
    ))
    return HttpServer(uvicorn.Config(
        app, host=host, port=port, log_level=settings.log_level.lower(),
        access_log=False, lifespan="on",
        log_config=None,  # uvicorn's lines go through the process's (JSON) handler
        # uvicorn's own limits stop at idle keep-alive: see http_protocol.py
        http=guarded_protocol(settings.http_request_timeout_s, settings.http_max_connections),
        timeout_keep_alive=settings.http_idle_timeout_s,  # type: ignore[arg-type]
    ))


async def relay_services(container: Container) -> list[Service]:
    settings: Settings = container.settings()
    wakeup = container.wakeup()
    services: list[Service] = []
    for lane, size in ((MessageType.EXPRESS, settings.relay_express_workers),
                       (MessageType.NORMAL, settings.relay_normal_workers)):
        for n in range(size):
            relay = await resolve(functools.partial(container.relay, lane=lane))
            poll = EXPRESS_POLL_S if lane is MessageType.EXPRESS else POLL_S
            services.append(RelayService(f"relay-{lane.value}-{n}", relay, wakeup, poll))
    janitor_relay = await resolve(container.relay)
    services.append(OutboxJanitor(
        janitor_relay,
        redrive_after=timedelta(seconds=settings.redrive_after_s),
        retention=timedelta(seconds=settings.outbox_retention_s),
        redrive_at_start=settings.embedded_bus,
        quiet_lanes=quiet_lanes(await resolve(container.bus)),
    ))
    return services


def quiet_lanes(bus: InProcessBus | RabbitBus) -> QuietLanes:
    """The lanes whose queue holds no message waiting for a worker, asked of the bus."""
    async def quiet() -> Collection[MessageType]:
        if isinstance(bus, InProcessBus):
            return list(MessageType) if bus.backlog() == 0 else []
        ready = await bus.backlog()
        return [kind for kind in MessageType if ready.get(bus.topology.queue_for(kind), 0) == 0]
    return quiet


async def delivery_services(container: Container, lane: str = "all") -> list[Service]:
    settings: Settings = container.settings()
    deliverer = await resolve(container.deliverer)
    bus = await resolve(container.bus)
    deliver = tracing.traced_handler(deliverer.deliver)  # a span "sms.deliver" when tracing
    if isinstance(bus, InProcessBus):
        return [InProcessWorker(f"worker-{n}", bus, deliver) for n in range(settings.workers)]
    metrics: Metrics = container.metrics()
    consumer = RabbitConsumer(
        bus, bus.topology, deliver,
        express_workers=settings.express_workers if lane != "normal" else 0,
        normal_workers=settings.workers if lane != "express" else 0,
        observer=metrics.queues.declare(bus.topology.work_queues),
    )
    return [RabbitWorker(consumer, settings.shutdown_timeout_s)]


async def backlog_monitor(container: Container, *, gauges: bool, admission: bool) -> list[Service]:
    """The outbox backlog reading for the gauges and/or the API's backpressure gate."""
    sinks: list[BacklogSink] = []
    gate: BacklogGate = container.admission()
    if admission and gate.enabled:
        sinks.append(gate.update)
    if gauges:
        sinks.append(container.metrics().outbox_backlog)
    if not sinks:
        return []
    every = ADMISSION_REFRESH_S if admission and gate.enabled else GAUGE_REFRESH_S
    uow: Callable[[], SqlUnitOfWork] = await resolve(container.uow)
    return [BacklogMonitor(uow, container.clock(), sinks, every)]


def metrics_server(settings: Settings) -> list[Service]:
    """Processes without the API serve their metrics on SMSGW_METRICS_PORT (0: none).

    A port that cannot be bound (another process of this host took it) is
    logged as an error, and the process does its work without metrics: losing
    the figures is better than losing the relay or the workers.
    """
    if settings.metrics_port == 0:
        return []
    server = MetricsHttpServer(settings.metrics_port)
    try:
        server.start()
    except OSError as exc:
        log.error("%s; running without a metrics server (give each process of this host "
                  "its own port)", _cannot_use("SMSGW_METRICS_PORT", str(settings.metrics_port),
                                               exc))
        return []
    log.info("metrics on http://%s:%d/metrics", server.host, server.port)
    return [MetricsServer(server)]


def _needs_broker(settings: Settings, command: str) -> None:
    if settings.embedded_bus:
        raise StartupError(
            f"smsgw {command} runs one part of the gateway and needs a broker shared by the "
            "others: set SMSGW_BROKER_URL=amqp://… (memory:// only works in `smsgw serve`)"
        )


async def serve(settings: Settings, host: str, port: int) -> None:
    async with started(settings) as container:
        services = [
            await http_service(container, host, port),
            *await relay_services(container),
            *await delivery_services(container),
            *await backlog_monitor(container, gauges=True, admission=True),
        ]
        log.info("smsgw serving on http://%s:%d with operators %s", host, port,
                 ", ".join(o.name for o in settings.operators))
        await supervise(services, settings.shutdown_timeout_s)


async def api(settings: Settings, host: str, port: int) -> None:
    _needs_broker(settings, "api")
    async with started(settings) as container:
        services = [
            await http_service(container, host, port),
            *await backlog_monitor(container, gauges=False, admission=True),
        ]
        await supervise(services, settings.shutdown_timeout_s)


async def relay(settings: Settings) -> None:
    _needs_broker(settings, "relay")
    async with started(settings) as container:
        services = [
            *await relay_services(container),
            *await backlog_monitor(container, gauges=True, admission=False),
            *metrics_server(settings),
        ]
        await supervise(services, settings.shutdown_timeout_s)


async def worker(settings: Settings, lane: str = "all") -> None:
    _needs_broker(settings, "worker")
    async with started(settings) as container:
        services = [*await delivery_services(container, lane), *metrics_server(settings)]
        await supervise(services, settings.shutdown_timeout_s)
