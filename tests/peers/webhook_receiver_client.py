"""The tests' handle on the webhook receiver (tests/peers/webhook_receiver.py): start it
as a subprocess on a free port, configure its endpoints, read what they received.

    async with webhook_receiver(tmp_path) as receiver:
        await receiver.configure("acme", secrets=[secret], fail_first=2)
        ...point the gateway at receiver.endpoint("acme")...
        got = await receiver.received("acme")

`start_receiver(logdir)` / `receiver.stop()` do the same for a synchronous fixture. It is
started as the benchmarks start their operator simulators (benchmarks/faults/operators.py):
from the checkout, in a session of its own, its stderr to a log in `logdir`, its ready
line read by the same `ready_line`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from benchmarks.faults.operators import ready_line
from benchmarks.harness import processes
from benchmarks.harness.processes import ROOT

READY = "listening on http://"
STOP_GRACE_S = 5.0


@dataclass
class WebhookReceiver:
    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""  # http://127.0.0.1:PORT

    def endpoint(self, name: str) -> str:
        """The URL the gateway is to POST `name`'s webhooks to."""
        return f"{self.url}/{name}"

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    async def configure(self, name: str, **settings: Any) -> dict[str, Any]:
        """E.g. `configure("acme", secrets=[old, new], require_all=True, fail_first=2)`
        (see the receiver's docstring for the settings); the settings now in force."""
        return dict(await self._call("PUT", f"/_config/{name}", json=settings))

    async def received(self, name: str) -> dict[str, Any]:
        """{"requests", "unverified", "events": {webhook-id: {"count", "payload",
        "first_at", "last_at", "codes"}}, "answers": {"200": n, …}}."""
        return dict(await self._call("GET", f"/_received/{name}"))

    async def requests(self, name: str) -> list[dict[str, Any]]:
        """Every request `name` got, in arrival order: {"id", "timestamp", "verified",
        "verified_by", "payload", "code", "at"}."""
        return list((await self._call("GET", f"/_requests/{name}"))["requests"])

    def stop(self) -> None:
        processes.stop([self.popen], STOP_GRACE_S)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def start_receiver(logdir: Path) -> WebhookReceiver:
    """The receiver, listening on a free port of 127.0.0.1; its stderr in
    `logdir`/webhook-receiver.log."""
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / "webhook-receiver.log"
    with log.open("ab") as stderr:
        popen = subprocess.Popen(
            [sys.executable, "-m", "tests.peers.webhook_receiver", "--port", "0"],
            stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT, start_new_session=True)
    receiver = WebhookReceiver(popen, log)
    line = ready_line(popen, lambda text: text.startswith(READY))
    if line is None:
        receiver.stop()
        raise RuntimeError(f"the webhook receiver did not start (exit {popen.poll()}): "
                           f"{log.read_text()[-2000:]}")
    receiver.url = line.split()[-1]
    return receiver


@asynccontextmanager
async def webhook_receiver(logdir: Path) -> AsyncIterator[WebhookReceiver]:
    """`start_receiver` for async tests: the receiver until the block ends, then stopped."""
    receiver = await asyncio.to_thread(start_receiver, logdir)
    try:
        yield receiver
    finally:
        await asyncio.to_thread(receiver.stop)
