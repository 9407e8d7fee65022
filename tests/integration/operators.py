"""HTTP operator simulators (`smsgw operator-sim`) as subprocesses, for fault tests.

Each listens on a free port it picks itself (`--port 0`) and says so on stdout;
`/stats` tells what it saw and `/control` changes its behaviour while it runs.
"""

from __future__ import annotations

import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.integration.harness import SMSGW

READY_TIMEOUT_S = 30.0


@dataclass
class OperatorSim:
    name: str
    process: subprocess.Popen[bytes]
    url: str = ""

    def stats(self) -> dict[str, int]:
        """{"accepted", "duplicates", "failed", "rejected"} so far."""
        response = httpx.get(f"{self.url}/stats", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def calls(self) -> int:
        """Every /send it answered, whatever the answer."""
        return sum(self.stats().values())

    def control(self, **settings: Any) -> dict[str, Any]:
        """E.g. `control(fail_rate=1.0)` takes it down, `control(fail_rate=0.0)` back up."""
        response = httpx.post(f"{self.url}/control", json=settings, timeout=10)
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


def operators_setting(*sims: OperatorSim) -> str:
    """The SMSGW_OPERATORS value naming these simulators, in failover order."""
    return ",".join(f"{sim.name}={sim.url}" for sim in sims)


@contextmanager
def operator_sims(workdir: Path, *specs: dict[str, Any]) -> Iterator[list[OperatorSim]]:
    """Start one simulator per spec (`name`, and optionally `fail_rate`, `latency_ms`,
    `reject_prefix`) at once; yield them when all listen; stop them at exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    sims: list[OperatorSim] = []
    try:
        for spec in specs:
            args = ["operator-sim", "--name", spec["name"], "--port", "0"]
            for option in ("fail_rate", "latency_ms", "reject_prefix"):
                if option in spec:
                    args += [f"--{option.replace('_', '-')}", str(spec[option])]
            log = (workdir / f"operator-{spec['name']}.log").open("ab")
            sims.append(OperatorSim(spec["name"], subprocess.Popen(
                [*SMSGW, *args], stdout=subprocess.PIPE, stderr=log,
            )))
        for sim in sims:
            sim.url = _listening_url(sim)
        yield sims
    finally:
        for sim in sims:
            sim.stop()


def _listening_url(sim: OperatorSim) -> str:
    """Read `operator-sim NAME listening on URL` from its stdout."""
    assert sim.process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(sim.process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                line = sim.process.stdout.readline().decode()
                if not line:
                    break  # closed: it exited
                if " listening on " in line:
                    return line.rsplit(" ", 1)[1].strip()
            elif sim.process.poll() is not None:
                break
    raise AssertionError(f"operator-sim {sim.name} did not start (exit {sim.process.poll()})")
