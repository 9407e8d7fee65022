"""Where a scenario's CPU time went, read from /proc: by process group, and the rest;
and how long each group's threads waited on the run queue for a core (schedstat)."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any


def _jiffies(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _run_delay_ns(pid: int) -> int:
    """Nanoseconds the process's threads spent runnable but waiting for a core."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile, or no schedstats in this kernel
    return total


def _server_pids() -> dict[str, list[int]]:
    names = {"mariadbd": "mariadb", "mysqld": "mariadb", "beam.smp": "rabbitmq"}
    found: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm in names:
                found.setdefault(names[comm], []).append(int(entry.name))
    return found


def _machine_jiffies() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


class CpuSample:
    """CPU used between start and `done()`: by group, by the whole box, and "other"."""

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self, groups: dict[str, list[int]], generator: str) -> None:
        self.groups = {**_server_pids(), **groups}
        self.generator = generator  # what the reaped children were: loadtest or reference
        self.before = {g: sum(_jiffies(p) for p in pids) for g, pids in self.groups.items()}
        self.delay_before = {g: sum(_run_delay_ns(p) for p in pids)
                             for g, pids in self.groups.items()}
        self.children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.machine = _machine_jiffies()
        self.started = time.monotonic()

    def done(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        busy = (_machine_jiffies()[0] - self.machine[0]) / self.HZ / elapsed
        cores = {g: (sum(_jiffies(p) for p in pids) - self.before[g]) / self.HZ / elapsed
                 for g, pids in self.groups.items()}
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        reaped = (now.ru_utime + now.ru_stime - self.children.ru_utime - self.children.ru_stime)
        cores[self.generator] = cores.get(self.generator, 0.0) + reaped / elapsed
        cores["other"] = max(0.0, busy - sum(cores.values()))
        # Threads waiting for a core, on average: next to `cores`, how much longer than
        # it ran each group's work waited (each round trip wakes a process that queues).
        waiting = {g: (sum(_run_delay_ns(p) for p in pids) - self.delay_before[g]) / 1e9
                   / elapsed for g, pids in self.groups.items()}
        return {"elapsed_s": round(elapsed, 2), "machine_busy_cores": round(busy, 3),
                "cores": {g: round(c, 3) for g, c in cores.items()},
                # CPU seconds, unrounded by the cores' 3 decimals: what a difference
                # between two runs (receipts off and on) is taken from.
                "seconds": {g: round(c * elapsed, 3) for g, c in cores.items()},
                "waiting_cores": {g: round(w, 3) for g, w in waiting.items()},
                "loadavg_at_end": os.getloadavg()[0]}
