"""One chaos run: set up, load with faults, drain, check (see benchmarks/chaos.py)."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.faults.checks import Database, check
from benchmarks.faults.cluster import Cluster
from benchmarks.faults.operators import DOWN_S, READY_TIMEOUT_S, REFUSED, SIMS, Sim, start_sim
from benchmarks.faults.schedule import fault_schedule, strike
from benchmarks.faults.services import Services
from benchmarks.faults.workload import Load, client_loop
from benchmarks.harness.forwarder import Forwarder
from benchmarks.harness.net import free_port, reachable
from benchmarks.harness.processes import ROOT, smsgw

TTL_S = 120.0  # SMSGW_MESSAGE_TTL_S: unfinished recipients expire (refunded), a bounded drain
POOR = 3  # customers seeded with POOR_BALANCE only
POOR_BALANCE = 40


@dataclass
class Options:
    duration: float = 60.0
    kills: int = 30
    cuts: int = 2  # of each: the database's connections, the broker's
    seed: int | None = None
    clients: int = 6
    customers: int = 20
    balance: int | None = None  # per customer; default: 10 units per second of the run
    drain_timeout: float = 180.0
    operators_down: float = DOWN_S  # seconds both operators fail everything, mid-run
    ttl: float = TTL_S
    mysql_url: str = "mysql://root@127.0.0.1:3306"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    workdir: Path | None = None
    keep: bool = False  # keep the database and queues (for a post-mortem)
    gateway_src: Path | None = None  # run the gateway from this checkout's src/ instead
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr,
                                                                    flush=True))
    # The operators: how one is started, and how a drained run is checked against
    # what they say (HTTP simulators by default; benchmarks/chaos.py --operators smpp).
    start_sim: Callable[[Path, str, float, float, str], Sim] = start_sim
    check: Callable[[Database, Load, dict[str, dict[str, Any]]], dict[str, Any]] = check


GATEWAY_SETTINGS = {
    "SMSGW_METRICS_PORT": "0",
    "SMSGW_LOG_FORMAT": "text",
    "SMSGW_REDRIVE_AFTER_S": "5",
    "SMSGW_BREAKER_RESET_S": "1",
    "SMSGW_OPERATOR_TIMEOUT_S": "2",
    "SMSGW_OPERATOR_RETRIES": "1",
    "SMSGW_SHUTDOWN_TIMEOUT_S": "3",
    # A killed worker's SENDING claims are taken again after this (longer than the
    # 2 x 2 tries of 2 s a delivery may take, so a live one is not sent twice).
    "SMSGW_DELIVERY_LEASE_S": "15",
    "SMSGW_WORKERS": "16",
    "SMSGW_EXPRESS_WORKERS": "8",
}


def run(options: Options) -> dict[str, Any]:
    """One chaos run; returns the summary (with "violations"); raises if it cannot run."""
    rng = random.Random(options.seed)
    services = Services(options.mysql_url, options.amqp_url)
    for what, (host, port) in (("MariaDB", services.mysql()), ("RabbitMQ", services.amqp())):
        if not reachable(host, port):
            raise RuntimeError(f"{what} is not reachable on {host}:{port}")
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix=f"chaos-{services.run}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log = options.log
    log(f"chaos run {services.run}: database {services.database}, logs in {workdir}")
    if options.customers <= POOR:
        raise RuntimeError(f"--customers must be more than {POOR}")
    balance = options.balance or max(100, int(10 * options.duration))
    users = list(range(1, options.customers + 1))
    with contextlib.ExitStack() as stack:
        services.create()
        if not options.keep:
            stack.callback(services.drop)
        code = ({"PYTHONPATH": str(options.gateway_src.resolve() / "src")}
                if options.gateway_src else {})
        seed(services, options.customers, balance, code)
        db = Forwarder("mariadb", services.mysql())
        stack.callback(db.close)
        mq = Forwarder("rabbitmq", services.amqp())
        stack.callback(mq.close)
        sims: dict[str, Sim] = {}
        for name, fail_rate, latency in SIMS:
            sims[name] = options.start_sim(workdir, name, fail_rate, latency, REFUSED)
            stack.callback(sims[name].stop)
        api_ports = [free_port(), free_port()]
        env = {**os.environ, **code, **GATEWAY_SETTINGS, **services.queues,
               "SMSGW_MESSAGE_TTL_S": f"{options.ttl:g}",
               "SMSGW_DATABASE_URL": services.database_url(db.port),
               "SMSGW_BROKER_URL": services.broker_url(mq.port),
               "SMSGW_OPERATORS": ",".join(f"{n}={s.url}" for n, s in sims.items())}
        cluster = Cluster(workdir, env, api_ports)
        cluster.start_all()
        stack.callback(cluster.stop)
        started = time.monotonic()
        while not cluster.ready():
            cluster.restart_exited()
            if time.monotonic() - started > READY_TIMEOUT_S:
                raise RuntimeError(f"the gateway was not ready in {READY_TIMEOUT_S:.0f} s;"
                                   f" see {workdir}")
            time.sleep(0.2)
        log(f"ready in {time.monotonic() - started:.1f} s; {options.duration:.0f} s of load,"
            f" {options.kills} kills, {options.cuts} cuts of each connection kind")

        load = Load()
        begin = time.monotonic()
        until = begin + options.duration
        urls = [f"http://127.0.0.1:{port}" for port in api_ports]
        clients = [threading.Thread(target=client_loop, daemon=True, args=(
            load, urls, users, until, random.Random(rng.random()))) for _ in range(options.clients)]
        for thread in clients:
            thread.start()

        events = fault_schedule(options.duration, options.kills, options.cuts,
                                options.operators_down)
        strike(events, begin, cluster, sims, db, mq, rng)
        while time.monotonic() < until:
            cluster.restart_exited()
            time.sleep(0.05)
        for thread in clients:
            while thread.is_alive():  # retries may run past the end of the load
                cluster.restart_exited()
                thread.join(0.2)
        load_s = time.monotonic() - begin
        log(f"load done in {load_s:.0f} s: {load.requests} requests,"
            f" {len(load.accepted)} accepted, {sum(cluster.kills.values())} kills,"
            f" exits {dict(cluster.exits)}; draining")

        drain_started = time.monotonic()
        drained = drain(services, cluster, options.drain_timeout)
        drain_s = time.monotonic() - drain_started
        cluster.stop()
        sim_state = {name: {"stats": sim.get("/stats"),
                            "references": sim.get("/references")["accepted"]}
                     for name, sim in sims.items()}
        summary = options.check(services, load, sim_state)
        summary.update({
            "run": services.run, "seed": options.seed, "duration_s": round(load_s, 1),
            "drained": drained, "drain_s": round(drain_s, 1),
            "kills": sum(cluster.kills.values()), "kills_by_process": dict(cluster.kills),
            "exits": dict(cluster.exits),
            "db_cuts": db.cuts, "db_connections_cut": db.connections_cut,
            "mq_cuts": mq.cuts, "mq_connections_cut": mq.connections_cut,
            "logs": str(workdir),
        })
        if not drained:
            summary["violations"]["not_drained"] = 1
        summary["run_problems"] = run_problems(summary, options)
        return summary
    raise AssertionError("unreachable")


def seed(services: Services, customers: int, balance: int, code: dict[str, str]) -> None:
    """Top up the customers: the first POOR can afford a few sends only, so they hit 0
    early and the balance >= 0 check means something; the others last (nearly) the run."""
    seed_env = {**os.environ, **code, "SMSGW_DATABASE_URL": services.database_url()}
    for first, count, units in ((1, POOR, POOR_BALANCE), (POOR + 1, customers - POOR, balance)):
        subprocess.run(smsgw("seed", "--users", str(count), "--first-user", str(first),
                             "--balance", str(units)), env=seed_env, check=True, timeout=120,
                       cwd=ROOT, capture_output=True)


def drain(services: Services, cluster: Cluster, timeout: float) -> bool:
    """Wait, every process up and nothing cut, until no recipient is unfinished."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        cluster.restart_exited()
        unfinished = services.sql(
            "SELECT COUNT(*) FROM sms_status WHERE status NOT IN ('DONE', 'FAILED')")[0][0]
        if unfinished == 0:
            return True
        time.sleep(1.0)
    return False


def run_problems(summary: dict[str, Any], options: Options) -> list[str]:
    """What the run was asked and did not do (a machine too busy for the gateway to come
    up between kills, say): whatever its checks say, such a run proves little."""
    problems = []
    for what, n in (("kills", options.kills), ("db_cuts", options.cuts),
                    ("mq_cuts", options.cuts)):
        if summary[what] < n:
            problems.append(f"{what} {summary[what]} < {n}")
    for what in ("db_connections_cut", "mq_connections_cut"):
        if options.cuts and summary[what] == 0:
            problems.append(f"{what} 0")
    if summary["accepted_sms"] == 0:
        problems.append("no send accepted")
    return problems
