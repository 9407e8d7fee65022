"""The SMSCs the SMPP tests talk to, each a subprocess on free ports.

- "node": the reference peer nobody here wrote, tests/peers/smsc/smsc.js on the npm
  package `smpp` (node-smpp), installed by `make` (`npm ci --prefix tests/peers/smsc`);
- "ours": `smsgw operator-sim --smpp` (smsgw_adapters/operators/smpp/simulator.py).

Both print `… listening on … PORT control on … PORT` when ready and answer the same
control API (GET /stats, /submits, /messages, /receipts; POST /control), documented
at the top of smsc.js. Node.js is a required service as MariaDB is (tests/services.py):
with SMSGW_REQUIRE_SERVICES=1 (CI) a missing `node` or node_modules fails the test,
otherwise it is skipped with the reason.
"""

from __future__ import annotations

import re
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.harness import SMSGW
from tests.services import services_required

SMSC_DIR = Path(__file__).parent / "smsc"
SMSC_SCRIPT = SMSC_DIR / "smsc.js"
KINDS = ("node", "ours")
SYSTEM_ID = "smsgw"
PASSWORD = "secret"
READY_TIMEOUT_S = 30.0
READY = re.compile(r"listening on \S*?(\d+) control on \S*?(\d+)\s*$")


def need_node() -> str:
    """The `node` executable, once the reference SMSC can run; fail or skip otherwise."""
    node = shutil.which("node")
    if node is None:
        problem = "Node.js (`node`) is not on PATH"
    elif not (SMSC_DIR / "node_modules" / "smpp" / "package.json").exists():
        problem = f"the npm package smpp is not installed in {SMSC_DIR} (run `make install`)"
    else:
        return node
    if services_required():
        pytest.fail(f"{problem} and SMSGW_REQUIRE_SERVICES=1")
    pytest.skip(f"{problem} (set SMSGW_REQUIRE_SERVICES=1 to make this a failure)")


@dataclass
class SmscPeer:
    kind: str
    process: subprocess.Popen[bytes]
    log: Path
    host: str = "127.0.0.1"
    port: int = 0  # SMPP
    control_port: int = 0
    system_id: str = SYSTEM_ID
    password: str = PASSWORD

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    def _get(self, path: str) -> Any:
        response = httpx.get(f"{self.control_url}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return dict(self._get("/stats"))

    def submits(self) -> list[dict[str, Any]]:
        return list(self._get("/submits")["submits"])

    def messages(self) -> list[dict[str, Any]]:
        return list(self._get("/messages")["messages"])

    def receipts(self) -> dict[str, Any]:
        return dict(self._get("/receipts"))

    def control(self, **settings: Any) -> dict[str, Any]:
        """E.g. `control(throttle_above=3)`, `control(drop_link=True)`; the settings."""
        response = httpx.post(f"{self.control_url}/control", json=settings, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def command(kind: str, system_id: str = SYSTEM_ID, password: str = PASSWORD,
            *options: str) -> list[str]:
    """How to start the SMSC of `kind` on free ports; `options` go to ours only (its
    receipt plan, seed: what the node SMSC has no counterpart for)."""
    if kind == "node":
        return [need_node(), str(SMSC_SCRIPT), "--system-id", system_id, "--password", password,
                "--port", "0", "--control-port", "0"]
    if kind == "ours":
        return [*SMSGW, "operator-sim", "--smpp", "--name", "sim", "--port", "0",
                "--control-port", "0", "--system-id", system_id, "--password", password,
                *options]
    raise ValueError(f"no SMSC of kind {kind!r}: {', '.join(KINDS)}")


@contextmanager
def smsc(kind: str, workdir: Path, system_id: str = SYSTEM_ID, password: str = PASSWORD,
         *options: str) -> Iterator[SmscPeer]:
    """Start the SMSC of `kind`; yield it once it listens; stop it at exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"smsc-{kind}.log"
    with log.open("ab") as stderr:
        process = subprocess.Popen(command(kind, system_id, password, *options),
                                   stdout=subprocess.PIPE, stderr=stderr)
    peer = SmscPeer(kind, process, log, system_id=system_id, password=password)
    try:
        peer.port, peer.control_port = _ready_ports(peer)
        yield peer
    finally:
        peer.stop()
        if process.stdout is not None:
            process.stdout.close()


def _ready_ports(peer: SmscPeer) -> tuple[int, int]:
    """The SMPP and control ports from the ready line on its stdout."""
    stdout = peer.process.stdout
    assert stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                line = stdout.readline().decode()
                if not line:
                    break  # closed: it exited
                if found := READY.search(line):
                    return int(found.group(1)), int(found.group(2))
            elif peer.process.poll() is not None:
                break
    raise AssertionError(f"the {peer.kind} SMSC did not start (exit {peer.process.poll()}): "
                         f"{peer.log.read_text()[-2000:]}")
