"""When the faults strike during the load: kills evenly spread, cuts between them."""

from __future__ import annotations

import random
import time

from benchmarks.faults.cluster import Cluster
from benchmarks.faults.operators import SIMS, Sim
from benchmarks.harness.forwarder import Forwarder


def fault_schedule(duration: float, kills: int, cuts: int, operators_down: float
                   ) -> list[tuple[float, str]]:
    """(seconds into the load, what) in time order: "kill", "cut-db", "cut-mq",
    "operators-down" and "operators-up"."""
    events: list[tuple[float, str]] = [
        (duration * (i + 1) / (kills + 1), "kill") for i in range(kills)]
    for i in range(cuts):
        events.append((duration * (2 * i + 1) / (2 * cuts + 1), "cut-db"))
        events.append((duration * (2 * i + 2) / (2 * cuts + 1), "cut-mq"))
    if operators_down > 0:
        events += [(duration * 0.45, "operators-down"),
                   (duration * 0.45 + operators_down, "operators-up")]
    events.sort()
    return events


def strike(events: list[tuple[float, str]], begin: float, cluster: Cluster,
           sims: dict[str, Sim], db: Forwarder, mq: Forwarder, rng: random.Random) -> None:
    """Each event at its time from `begin`, restarting what exits meanwhile (the
    forwarders count the cuts and the connections they found)."""
    for at, what in events:
        while time.monotonic() < begin + at:
            cluster.restart_exited()
            time.sleep(0.05)
        if what == "kill":
            for _ in range(100):  # one process may not have lived MIN_UPTIME_S yet
                if cluster.kill_random(rng):
                    break
                time.sleep(0.05)
        elif what.startswith("operators-"):
            for name, fail_rate, _ in SIMS:
                sims[name].control(fail_rate=1.0 if what == "operators-down" else fail_rate)
        else:
            forwarder = db if what == "cut-db" else mq
            forwarder.cut(hold_s=1.0)
