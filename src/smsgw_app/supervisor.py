"""Runs a process's services until SIGTERM/SIGINT, then stops them within a bound.

On a signal every service is asked to stop taking work and to finish what it
holds; whatever is still running after the shutdown timeout is cancelled. A
cancelled delivery is safe: its recipients stay unfinished and are delivered
again (the broker redelivers unacked messages; the outbox redrives the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Protocol

import uvicorn

log = logging.getLogger("smsgw.supervisor")


class Service(Protocol):
    name: str

    async def run(self) -> None:
        """Work until asked to stop, then return."""

    def stop(self) -> None:
        """Ask `run` to stop taking work and return once in-flight work is done."""


class ServiceFailed(Exception):
    pass


class HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the supervisor owns the signals."""

    name = "http"

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def run(self) -> None:  # type: ignore[override]
        await self.serve()
        if not self.should_exit:  # e.g. the port was taken
            raise ServiceFailed("the HTTP server stopped on its own")

    def stop(self) -> None:
        self.should_exit = True


async def supervise(services: list[Service], shutdown_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    tasks = {asyncio.create_task(s.run(), name=s.name): s for s in services}
    signalled = asyncio.create_task(stopping.wait())
    failure: BaseException | None = None
    try:
        done, _ = await asyncio.wait([*tasks, signalled], return_when=asyncio.FIRST_COMPLETED)
        for task in done - {signalled}:
            failure = task.exception() or ServiceFailed(f"{task.get_name()} stopped on its own")
            log.error("service %s ended: %r; stopping the others", task.get_name(), failure)
        log.info("stopping: %s", ", ".join(s.name for s in services))
        for service in services:
            service.stop()
        running = [t for t in tasks if not t.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=shutdown_timeout)
            for task in late:
                log.warning("%s did not stop within %.0f s; cancelling", task.get_name(),
                            shutdown_timeout)
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
    finally:
        signalled.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if failure is not None:
        raise ServiceFailed(str(failure)) from failure
