"""The two operator simulators of a chaos run: started, told to fail, asked what they accepted."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
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


def start_sim(logdir: Path, name: str, fail_rate: float, latency_ms: float,
              reject_prefix: str) -> Sim:
    # This checkout's simulator (it has /references), whatever code the gateway runs.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(logdir / f"operator-{name}.log", "ab") as log:
        popen = subprocess.Popen(
            smsgw("operator-sim", "--name", name, "--port", "0", "--fail-rate", str(fail_rate),
                  "--latency-ms", str(latency_ms), "--reject-prefix", reject_prefix),
            stdout=subprocess.PIPE, stderr=log, cwd=ROOT, start_new_session=True, env=env)
    sim = Sim(name, popen)
    assert popen.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(popen.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and not sim.url:
            if selector.select(timeout=0.2):
                line = popen.stdout.readline().decode()
                if not line:
                    break
                if " listening on " in line:
                    sim.url = line.rsplit(" ", 1)[1].strip()
            elif popen.poll() is not None:
                break
    if not sim.url:
        sim.stop()
        raise RuntimeError(f"operator-sim {name} did not start; see {logdir}")
    return sim
