"""Starting and stopping the gateway's processes against the container."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.sql.engine import at_head, create_engine, upgrade_to_head
from smsgw_app.api.app import ApiServices, create_app
from smsgw_app.api.health import ReadinessCheck
from smsgw_app.config import Settings
from smsgw_app.container import Container, resolve
from smsgw_app.workers import DeliveryWorker, RelayLoop

log = logging.getLogger("smsgw")


class StartupError(Exception):
    """A dependency named by the configuration cannot be used (the CLI exits 2)."""


async def migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade_to_head(engine)
    except Exception as exc:
        raise StartupError(_cannot_open(settings, exc)) from exc
    finally:
        await engine.dispose()
    log.info("database migrated to head")


def _cannot_open(settings: Settings, exc: Exception) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot use SMSGW_DATABASE_URL={settings.database_url!r}: {reason}"


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> str | None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None if await at_head(engine) else "migrations are not at head"
    return check


async def serve(settings: Settings, host: str, port: int) -> None:
    container = Container(settings=settings)
    try:
        await container.init_resources()  # type: ignore[misc]
    except Exception as exc:
        raise StartupError(_cannot_open(settings, exc)) from exc
    try:
        engine = await resolve(container.engine)
        app = create_app(ApiServices(
            await resolve(container.sender), await resolve(container.history),
            await resolve(container.accounts), {"database": database_check(engine)},
        ))
        relay, deliverer = await resolve(container.relay), await resolve(container.deliverer)
        loops = [
            RelayLoop(relay, container.wakeup(),
                      timedelta(seconds=settings.redrive_after_s)).run(),
            *(DeliveryWorker(container.bus(), deliverer).run()
              for _ in range(settings.workers)),
        ]
        background = [asyncio.create_task(loop) for loop in loops]
        server = uvicorn.Server(uvicorn.Config(
            app, host=host, port=port, log_level=settings.log_level.lower(),
            access_log=False, lifespan="on",
        ))
        log.info("smsgw serving on http://%s:%d with operators %s", host, port,
                 ", ".join(o.name for o in settings.operators))
        try:
            await server.serve()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
    finally:
        await container.shutdown_resources()  # type: ignore[misc]
