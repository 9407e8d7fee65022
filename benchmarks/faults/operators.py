"""The two operator simulators of a chaos run: started, told to fail, asked what they accepted."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from benchmarks.harness import processes
from benchmarks.harness.processes import ROOT, smsgw

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
SIMS = (("A", 0.2, 20.0), ("B", 0.05, 10.0))  # name, share of sends answered 503, latency ms
REFUSED = "0999"  # both simulators refuse numbers starting with it
DOWN_S = 4.0  # both operators answer 503 to everything for this long, once, mid-run


@dataclass
class Sim:
    name: str
    popen: subprocess.Popen[bytes]
    url: str = ""

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def control(self, **settings: Any) -> None:
        httpx.post(f"{self.url}/control", json=settings, timeout=30).raise_for_status()

    def stop(self) -> None:
        processes.stop([self.popen], STOP_GRACE_S)


def launch(logdir: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    """`smsgw operator-sim --name NAME ARGS…` from this checkout (it has /references,
    whatever code the gateway runs), its stderr to operator-NAME.log in `logdir`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(logdir / f"operator-{name}.log", "ab") as log:
        return subprocess.Popen(
            smsgw("operator-sim", "--name", name, *args),
            stdout=subprocess.PIPE, stderr=log, cwd=ROOT, start_new_session=True, env=env)


def ready_line(popen: subprocess.Popen[bytes], ready: Callable[[str], bool]) -> str | None:
    """The first line of its stdout that `ready` accepts, within READY_TIMEOUT_S; None
    when it exits or stays silent."""
    assert popen.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(popen.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = popen.stdout.readline().decode()
                if not line:
                    return None
                if ready(line):
                    return line
            elif popen.poll() is not None:
                return None
    return None


def start_sim(logdir: Path, name: str, fail_rate: float, latency_ms: float,
              reject_prefix: str) -> Sim:
    sim = Sim(name, launch(logdir, name, "--port", "0", "--fail-rate", str(fail_rate),
                           "--latency-ms", str(latency_ms), "--reject-prefix", reject_prefix))
    line = ready_line(sim.popen, lambda text: " listening on " in text)
    if line is None:
        sim.stop()
        raise RuntimeError(f"operator-sim {name} did not start; see {logdir}")
    sim.url = line.rsplit(" ", 1)[1].strip()
    return sim
