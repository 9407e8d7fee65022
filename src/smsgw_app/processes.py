"""The processes: which services each runs, over the container's adapters.

`serve` runs everything in one process; `api`, `relay` and `worker` run one
part each and scale out as separate processes (they need a real broker);
`webhooks` sends the customers' status webhooks (the database alone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import uvloop

from smsgw_adapters.observability import MetricsHttpServer
from smsgw_app.config import Settings, StartupError, cannot_use
from smsgw_app.container import Container
from smsgw_app.database import opened
from smsgw_app.supervisor import Service, supervise
from smsgw_app.workers import MetricsServer
from smsgw_core.messages import MessageType

log = logging.getLogger("smsgw")


def run(settings: Settings, main: Coroutine[Any, Any, None]) -> None:
    """Run a process's main coroutine on the configured event loop (SMSGW_EVENT_LOOP)."""
    if settings.event_loop == "uvloop":
        uvloop.run(main)  # libuv's loop: less CPU per socket event than asyncio's own
    else:
        asyncio.run(main)


async def migrate(settings: Settings) -> None:
    async with opened(settings.database_url, migrate=True):
        pass
    log.info("database migrated to head")


@asynccontextmanager
async def started(
    settings: Settings, lanes: frozenset[MessageType] = frozenset(MessageType)
) -> AsyncIterator[Container]:
    """The container with its resources (database, broker, HTTP clients) up."""
    container = Container(settings=settings, lanes=lanes)
    resources = (
        (container.database, "SMSGW_DATABASE_URL", settings.database_url),
        (container.broker, "SMSGW_BROKER_URL", settings.broker_url),
        (container.http_session, "SMSGW_OPERATORS", ""),
    )
    try:
        for resource, variable, value in resources:
            try:
                # The database's resource is the nested container's: typed Provider.
                await resource.init()  # type: ignore[misc, union-attr]
            except Exception as exc:
                raise StartupError(cannot_use(variable, value, exc)) from exc
        yield container
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


def metrics_server(settings: Settings) -> list[Service]:
    """Processes without the API serve their metrics on SMSGW_METRICS_PORT (0: none).

    A port that cannot be bound (another process of this host took it) is
    logged as an error, and the process does its work without metrics: losing
    the figures is better than losing the relay or the workers.
    """
    if settings.metrics_port == 0:
        return []
    server = MetricsHttpServer(settings.metrics_port, token=settings.metrics_token)
    try:
        server.start()
    except OSError as exc:
        log.error("%s; running without a metrics server (give each process of this host "
                  "its own port)", cannot_use("SMSGW_METRICS_PORT", str(settings.metrics_port),
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
            container.http_service(host=host, port=port),
            container.key_usage(),
            *container.relay_services(),
            *container.delivery_services(),
            *container.webhook_services(),
            *container.backlog_monitor(gauges=True, admission=True),
        ]
        log.info("smsgw serving on http://%s:%d with operators %s", host, port,
                 ", ".join(o.name for o in settings.operators))
        await supervise(services, settings.shutdown_timeout_s)


async def api(settings: Settings, host: str, port: int) -> None:
    _needs_broker(settings, "api")
    async with started(settings) as container:
        services = [
            container.http_service(host=host, port=port),
            container.key_usage(),
            *container.backlog_monitor(gauges=False, admission=True),
        ]
        await supervise(services, settings.shutdown_timeout_s)


async def relay(settings: Settings) -> None:
    _needs_broker(settings, "relay")
    async with started(settings) as container:
        services = [
            *container.relay_services(),
            *container.backlog_monitor(gauges=True, admission=False),
            *metrics_server(settings),
        ]
        await supervise(services, settings.shutdown_timeout_s)


async def worker(
    settings: Settings, lanes: frozenset[MessageType] = frozenset(MessageType)
) -> None:
    _needs_broker(settings, "worker")
    async with started(settings, lanes) as container:
        services = [*container.delivery_services(), *metrics_server(settings)]
        await supervise(services, settings.shutdown_timeout_s)


async def webhooks(settings: Settings) -> None:
    """Sends customers' webhook events; needs the database only (no broker)."""
    async with started(settings) as container:
        services = [*container.webhook_services(), *metrics_server(settings)]
        await supervise(services, settings.shutdown_timeout_s)
