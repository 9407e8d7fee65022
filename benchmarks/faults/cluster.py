"""The gateway's processes under chaos: killed at random, restarted as an orchestrator would."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from benchmarks.harness import processes
from benchmarks.harness.processes import smsgw

MIN_UPTIME_S = 3.0  # a process is killed only once it has lived this long (started up)
STOP_GRACE_S = 15.0


@dataclass
class Proc:
    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes] | None = None
    started: float = 0.0


class Cluster:
    """The gateway's processes; restarts any that is down, as an orchestrator would."""

    def __init__(self, logdir: Path, env: dict[str, str], api_ports: list[int]) -> None:
        self.logdir = logdir
        self.env = env
        self.api_ports = api_ports
        self.procs = {
            "api1": Proc("api1", ["api", "--port", str(api_ports[0])]),
            "api2": Proc("api2", ["api", "--port", str(api_ports[1])]),
            "relay": Proc("relay", ["relay"]),
            "worker-express": Proc("worker-express", ["worker", "--lane", "express"]),
            "worker-normal": Proc("worker-normal", ["worker", "--lane", "normal"]),
        }
        self.lock = threading.Lock()
        self.kills = Counter[str]()
        self.exits: Counter[str] = Counter()  # exited on their own, then restarted

    def start(self, name: str) -> None:
        proc = self.procs[name]
        proc.popen = processes.spawn(smsgw(*proc.argv), self.env, self.logdir / f"{name}.log")
        proc.started = time.monotonic()

    def start_all(self) -> None:
        for name in self.procs:
            self.start(name)

    def restart_exited(self) -> None:
        with self.lock:
            for name, proc in self.procs.items():
                if proc.popen is not None and proc.popen.poll() is not None:
                    self.exits[f"{name}:{proc.popen.returncode}"] += 1
                    self.start(name)

    def kill_random(self, rng: random.Random) -> str | None:
        """SIGKILL one process that has lived MIN_UPTIME_S, and start it again at once."""
        with self.lock:
            now = time.monotonic()
            candidates = [n for n, p in self.procs.items() if p.popen is not None
                          and p.popen.poll() is None and now - p.started >= MIN_UPTIME_S]
            if not candidates:
                return None
            name = rng.choice(sorted(candidates))
            popen = self.procs[name].popen
            assert popen is not None
            popen.kill()
            popen.wait()
            self.kills[name] += 1
            self.start(name)
            return name

    def ready(self) -> bool:
        for port in self.api_ports:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True

    def stop(self) -> None:
        with self.lock:
            processes.stop((proc.popen for proc in self.procs.values()
                            if proc.popen is not None), STOP_GRACE_S)
