"""`make bench`: the gateway's performance on this machine, against MariaDB and RabbitMQ.

    .venv/bin/python benchmarks/run.py [--quick] [--only reference,accept,end_to_end,express]

Writes benchmarks/results/<YYYY-MM-DD>.json (everything measured, the machine,
the commit) and <YYYY-MM-DD>.md (the figures against their targets, readable on
its own); a --quick or --only run adds a suffix to the name, so it never
replaces a full run's results.

It needs MariaDB and RabbitMQ (by default root@127.0.0.1:3306 and
guest@127.0.0.1:5672; exit 2 when either is unreachable). It creates the
database `smsgw_bench` afresh (dropped at the end unless --keep-database),
migrates it and seeds 5,000 customers with `smsgw seed`, and gives every
scenario queues of its own (`bench_<scenario>_<run>_{express,normal,dead}`),
deleted afterwards. Then, in order, each in its own processes:

- reference:  benchmarks/reference_limit.py, the API's accept transaction with
              nothing but the driver, over a sweep of concurrencies (the ceiling);
- accept:     two `smsgw api` processes and nothing else (the outbox just fills):
              `smsgw loadtest` closed loop with 1 recipient spread over 5,000
              customers, the same with 90 % from one customer, 100 recipients per
              request, then an open loop at 1,000 req/s for the latency target;
              the message, outbox and ledger tables are emptied before each run;
- end_to_end: two `smsgw operator-sim`, two `smsgw api`, `smsgw relay` and
              `smsgw worker`; 1,300 req/s for 60 s, then waits for every delivery;
- express:    the same without the worker: 100,000 normal recipients accepted
              and published first, then the worker starts and express sends go
              at 50 req/s for 20 s while that backlog drains.

Every process writes its stdout and stderr to files in a temporary directory
(printed at the start and with every failure). Processes are stopped (SIGTERM,
then SIGKILL) whatever happens; a scenario that fails is recorded with its
error and the next one runs. Each scenario also samples CPU time from /proc
(the gateway's processes, MariaDB, RabbitMQ, the load generator, and the rest
of the machine as "other"), which is what says where a missed target's time
went. Keep to one run at a time: it is meant to have the box to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` importable

from benchmarks import report  # noqa: E402

GROUPS = ("reference", "accept", "end_to_end", "express")
USERS = 5000
BALANCE = 1_000_000_000  # enough for every scenario: nobody runs out
STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Plan:
    """How long and how hard each scenario runs."""

    reference_levels: str = "4,8,16,32,64,128"
    reference_seconds: float = 4.0  # per level, after 1 s of warm-up
    reference_group: int = 32  # requests per grouped reference transaction
    reference_group_levels: str = "2,4,8,16"
    accept_seconds: float = 20.0
    accept_concurrency: int = 64  # closed loop: requests in flight
    accept_100_concurrency: int = 32
    open_loop_rps: int = report.OPEN_LOOP_RPS
    open_loop_concurrency: int = 256  # the most in flight the open loop may have
    e2e_rps: int = 1300
    e2e_seconds: float = report.E2E_SECONDS
    e2e_concurrency: int = 256
    backlog_recipients: int = report.EXPRESS_BACKLOG
    backlog_rps: int = 100  # requests of 100 recipients each
    express_rps: int = 50
    express_seconds: float = 20.0
    delivery_timeout_s: float = 180.0


FULL = Plan()
QUICK = replace(
    FULL, reference_levels="8,32,128", reference_group_levels="4",
    reference_seconds=1.0, accept_seconds=4.0,
    e2e_rps=300, e2e_seconds=8.0, backlog_recipients=5_000, backlog_rps=50,
    express_rps=20, express_seconds=5.0, delivery_timeout_s=60.0,
)


class ScenarioError(Exception):
    """A scenario could not run; the message says why and where the logs are."""


# ---------------------------------------------------------------- the services


@dataclass(frozen=True, slots=True)
class Services:
    mysql_url: str  # mysql://USER[:PASSWORD]@HOST[:PORT], no database
    amqp_url: str
    database: str

    @property
    def database_url(self) -> str:
        parts = urlsplit(self.mysql_url)
        return f"mysql+asyncmy://{parts.netloc}/{self.database}"

    def endpoints(self) -> list[tuple[str, str, int]]:
        db, mq = urlsplit(self.mysql_url), urlsplit(self.amqp_url)
        return [("MariaDB", db.hostname or "127.0.0.1", db.port or 3306),
                ("RabbitMQ", mq.hostname or "127.0.0.1", mq.port or 5672)]

    def sql(self, statement: str, *, database: str | None = "") -> list[tuple[Any, ...]]:
        """Run one statement (in the bench database unless told otherwise), autocommit."""
        import pymysql

        parts = urlsplit(self.mysql_url)
        conn = pymysql.connect(
            host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
            user=parts.username or "root", password=parts.password or "",
            database=self.database if database == "" else database, autocommit=True,
        )
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return list(cur.fetchall())
        finally:
            conn.close()

    def count(self, where_sql: str) -> int:
        return int(self.sql(f"SELECT COUNT(*) FROM {where_sql}")[0][0])

    def delete_queues(self, names: list[str]) -> None:
        import aio_pika

        async def delete() -> None:
            connection = await aio_pika.connect(self.amqp_url)
            async with connection:
                for name in names:
                    # A failed delete closes its channel: one channel each.
                    channel = await connection.channel()
                    with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                        await channel.queue_delete(name)

        asyncio.run(delete())

    def rabbitmq_version(self) -> str | None:
        import aio_pika

        async def version() -> str | None:
            connection = await aio_pika.connect(self.amqp_url)
            async with connection:
                props = connection.transport.connection.server_properties  # type: ignore[union-attr]
                value = props.get("version")
                return value.decode() if isinstance(value, bytes) else str(value)

        try:
            return asyncio.run(version())
        except Exception:
            return None


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- processes and CPU


@dataclass
class Processes:
    """The processes of one scenario; `stop()` ends them all, whatever happened."""

    logdir: Path
    scenario: str
    running: list[tuple[str, str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, group: str, argv: list[str], env: dict[str, str]
              ) -> subprocess.Popen[bytes]:
        stem = self.logdir / f"{self.scenario}.{name}"
        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT,
                                    start_new_session=True)
        self.running.append((name, group, proc))
        return proc

    def pids(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for _, group, proc in self.running:
            groups.setdefault(group, []).append(proc.pid)
        return groups

    def log(self, name: str) -> str:
        return f"{self.logdir / self.scenario}.{name}.err"

    def stop(self) -> None:
        for _, _, proc in self.running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for _, _, proc in self.running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.running.clear()


def _jiffies(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


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
        return {"elapsed_s": round(elapsed, 2), "machine_busy_cores": round(busy, 3),
                "cores": {g: round(c, 3) for g, c in cores.items()},
                "loadavg_at_end": os.getloadavg()[0]}


# ---------------------------------------------------------------- the runner


def smsgw(*args: str) -> list[str]:
    return [sys.executable, "-m", "smsgw_app.cli", *args]


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, log: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ScenarioError(f"{what} exited with {proc.returncode} at start; see {log}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise ScenarioError(f"{what} not ready at {url} after {READY_TIMEOUT_S:.0f} s; see {log}")


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise ScenarioError(f"gave up waiting {timeout:.0f} s for {what}")
        time.sleep(0.5)
    return time.monotonic() - started


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


class Bench:
    def __init__(self, services: Services, plan: Plan, logdir: Path, overrides: dict[str, str],
                 log_level: str) -> None:
        self.services, self.plan, self.logdir = services, plan, logdir
        self.overrides, self.log_level = overrides, log_level
        self.run_id = uuid.uuid4().hex[:6]
        self.scenarios: dict[str, dict[str, Any]] = {}

    # -- plumbing

    def env(self, scenario: str, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "SMSGW_DATABASE_URL": self.services.database_url,
            "SMSGW_BROKER_URL": self.services.amqp_url,
            "SMSGW_MAX_BACKLOG": "0",  # no backpressure: the outbox may grow as it will
            "SMSGW_LOG_LEVEL": self.log_level,
            "SMSGW_SHUTDOWN_TIMEOUT_S": "5",
            **{f"SMSGW_{kind.upper()}_QUEUE": name for kind, name in self.queues(scenario)},
            **extra,
            **self.overrides,
        })
        return env

    def queues(self, scenario: str) -> list[tuple[str, str]]:
        return [(kind, f"bench_{scenario}_{self.run_id}_{kind}")
                for kind in ("express", "normal", "dead_letter")]

    @contextlib.contextmanager
    def processes(self, scenario: str) -> Iterator[Processes]:
        procs = Processes(self.logdir, scenario)
        try:
            yield procs
        finally:
            procs.stop()
            with contextlib.suppress(Exception):
                self.services.delete_queues([name for _, name in self.queues(scenario)])

    def record(self, name: str, description: str, measure: Callable[[], dict[str, Any]]) -> None:
        print(f"- {name}: {description}", flush=True)
        record: dict[str, Any] = {"description": description, "status": "ok", "error": None}
        started = time.monotonic()
        try:
            record.update(measure())
        except Exception as exc:
            error = str(exc) if isinstance(exc, ScenarioError) else f"{type(exc).__name__}: {exc}"
            record.update(status="failed", error=error)
            print(f"  FAILED: {error} (logs in {self.logdir})", flush=True)
        record["wall_s"] = round(time.monotonic() - started, 1)
        self.scenarios[name] = record
        if record["status"] == "ok":
            print(f"  {_brief(record)}", flush=True)

    def fail_all(self, names: list[tuple[str, str]], exc: Exception) -> None:
        for name, description in names:
            self.record(name, description, lambda: _raise(exc))

    def truncate(self) -> None:
        for table in ("sms_status", "outbox_events", "user_transactions", "idempotency_keys"):
            self.services.sql(f"TRUNCATE TABLE {table}")

    def loadtest(self, name: str, urls: list[str], *, rps: float, duration: float,
                 concurrency: int, recipients: int = 1, hot_share: float = 0.0,
                 express_ratio: float = 0.0, wait_delivery: bool = False) -> dict[str, Any]:
        argv = smsgw("loadtest", *[a for u in urls for a in ("--url", u)],
                     "--rps", str(rps), "--duration", str(duration),
                     "--concurrency", str(concurrency), "--users", str(USERS),
                     "--first-user", "1", "--hot-share", str(hot_share),
                     "--recipients", str(recipients), "--express-ratio", str(express_ratio),
                     "--json")
        if wait_delivery:
            argv += ["--wait-delivery", "--delivery-timeout", str(self.plan.delivery_timeout_s)]
        out, err = self.logdir / f"loadtest.{name}.json", self.logdir / f"loadtest.{name}.err"
        timeout = duration + (self.plan.delivery_timeout_s if wait_delivery else 0) + 120
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            try:
                done = subprocess.run(argv, stdout=stdout, stderr=stderr, cwd=ROOT,
                                      env=self.env("loadtest"), timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise ScenarioError(f"loadtest {name} ran past {timeout:.0f} s; "
                                    f"see {err}") from None
        if done.returncode != 0:
            raise ScenarioError(f"loadtest {name} exited with {done.returncode}: {_tail(err)} "
                                f"(see {err})")
        try:
            doc: dict[str, Any] = json.loads(out.read_text())
        except ValueError as exc:
            raise ScenarioError(
                f"loadtest {name} printed no JSON document ({exc}); see {out}") from None
        return doc

    def measured(self, procs: Processes, name: str, urls: list[str], **load: Any
                 ) -> dict[str, Any]:
        sample = CpuSample(procs.pids(), "loadtest")
        doc = self.loadtest(name, urls, **load)
        return {"loadtest": doc, "cpu": sample.done()}

    def start_apis(self, procs: Processes, scenario: str, **extra: str) -> list[str]:
        urls = []
        for n in (1, 2):
            port = free_port()
            proc = procs.start(f"api{n}", "api", smsgw("api", "--port", str(port)),
                               self.env(scenario, **extra))
            wait_http(f"http://127.0.0.1:{port}/readyz", proc, f"smsgw api {n}",
                      procs.log(f"api{n}"))
            urls.append(f"http://127.0.0.1:{port}")
        return urls

    def start_operators(self, procs: Processes) -> dict[str, str]:
        operators = {}
        for name in ("A", "B"):
            port = free_port()
            proc = procs.start(f"operator{name}", "operators",
                               smsgw("operator-sim", "--name", name, "--port", str(port)),
                               self.env("operators"))
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/stats", proc, f"operator-sim {name}", procs.log(f"operator{name}"))
            operators[name] = url
        return operators

    def start_background(self, procs: Processes, scenario: str, command: str,
                         *args: str, name: str = "", **extra: str) -> None:
        port = free_port()
        name = name or command
        proc = procs.start(name, command, smsgw(command, *args),
                           self.env(scenario, SMSGW_METRICS_PORT=str(port), **extra))
        wait_http(f"http://127.0.0.1:{port}/metrics", proc, f"smsgw {command} {' '.join(args)}",
                  procs.log(name))

    def start_workers(self, procs: Processes, scenario: str, spec: str) -> None:
        """A worker process per lane, as production would run them: express keeps its
        time to the operator whatever the normal backlog does to the other's loop."""
        for lane in ("express", "normal"):
            self.start_background(procs, scenario, "worker", "--lane", lane,
                                  name=f"worker-{lane}", SMSGW_OPERATORS=spec)

    # -- the scenarios

    def reference(self) -> None:
        plan = self.plan
        # The one-request transaction (what an Idempotency-Key send still commits), and
        # the grouped one the API commits for concurrent sends: the ceiling is the best.
        variants = (
            ("reference", 1, plan.reference_levels, "the one-request accept transaction"),
            ("reference_grouped", plan.reference_group, plan.reference_group_levels,
             f"the accept transaction of {plan.reference_group} requests at once"),
        )
        for name, group, levels, what in variants:
            def measure(group: int = group, levels: str = levels,
                        name: str = name) -> dict[str, Any]:
                argv = [sys.executable, str(ROOT / "benchmarks" / "reference_limit.py"),
                        "--database-url", self.services.database_url, "--json",
                        "--users", str(USERS), "--concurrency", levels,
                        "--duration", str(plan.reference_seconds), "--group", str(group)]
                sample = CpuSample({}, "reference")
                done = subprocess.run(argv, capture_output=True, cwd=ROOT, check=False,
                                      timeout=600)
                cpu = sample.done()
                (self.logdir / f"{name}.err").write_bytes(done.stderr)
                if done.returncode != 0:
                    raise ScenarioError(f"reference_limit.py exited with {done.returncode}: "
                                        f"{_tail(self.logdir / f'{name}.err')}")
                return {"result": json.loads(done.stdout), "cpu": cpu}

            try:
                self.record(name, f"benchmarks/reference_limit.py --group {group}: {what}, "
                            f"asyncmy alone, connections {levels}, "
                            f"{plan.reference_seconds:g} s each", measure)
            finally:
                self.truncate()

    def accept(self) -> None:
        plan = self.plan
        runs: list[tuple[str, str, dict[str, Any]]] = [
            ("accept_spread", f"closed loop, {plan.accept_concurrency} in flight, 1 recipient, "
             f"{USERS:,} customers, {plan.accept_seconds:g} s",
             {"rps": 0, "duration": plan.accept_seconds,
              "concurrency": plan.accept_concurrency}),
            ("accept_hot", "as accept_spread with 90 % of requests from customer 1",
             {"rps": 0, "duration": plan.accept_seconds,
              "concurrency": plan.accept_concurrency, "hot_share": 0.9}),
            ("accept_100", f"closed loop, {plan.accept_100_concurrency} in flight, "
             f"100 recipients, {plan.accept_seconds:g} s",
             {"rps": 0, "duration": plan.accept_seconds,
              "concurrency": plan.accept_100_concurrency, "recipients": 100}),
            ("accept_1000rps", f"open loop at {plan.open_loop_rps} req/s, 1 recipient, "
             f"{plan.accept_seconds:g} s",
             {"rps": plan.open_loop_rps, "duration": plan.accept_seconds,
              "concurrency": plan.open_loop_concurrency}),
        ]
        with self.processes("accept") as procs:
            try:
                self.truncate()
                urls = self.start_apis(procs, "accept")
                # Warm-up, not recorded: connection pools, the buffer pool, code paths.
                self.loadtest("warmup", urls, rps=0, duration=min(3.0, plan.accept_seconds),
                              concurrency=plan.accept_concurrency)
            except Exception as exc:
                self.fail_all([(name, text) for name, text, _ in runs], exc)
                return
            for name, text, load in runs:
                self.truncate()  # every run starts from the same (empty) tables
                self.record(name, f"2 smsgw api; {text}",
                            functools.partial(self.measured, procs, name, urls, **load))

    def end_to_end(self) -> None:
        plan = self.plan

        def measure(procs: Processes) -> dict[str, Any]:
            self.truncate()
            operators = self.start_operators(procs)
            spec = ",".join(f"{name}=http://{urlsplit(url).netloc}"
                            for name, url in operators.items())
            urls = self.start_apis(procs, "e2e", SMSGW_OPERATORS=spec)
            self.start_background(procs, "e2e", "relay", SMSGW_OPERATORS=spec)
            self.start_workers(procs, "e2e", spec)
            result = self.measured(procs, "end_to_end", urls, rps=plan.e2e_rps,
                                   duration=plan.e2e_seconds, concurrency=plan.e2e_concurrency,
                                   wait_delivery=True)
            result["operators"] = {name: _get_json(f"{url}/stats")
                                   for name, url in operators.items()}
            return result

        with self.processes("e2e") as procs:
            self.record("end_to_end", "2 operator-sim, 2 api, relay, 2 workers (express, normal); "
                        f"{plan.e2e_rps} req/s of 1 recipient for {plan.e2e_seconds:g} s, "
                        "then every delivery awaited", lambda: measure(procs))

    def express(self) -> None:
        plan = self.plan

        def unfinished_normal() -> int:
            return self.services.count(
                "sms_status WHERE type = 'normal' AND status IN ('PENDING', 'SENDING')")

        def measure(procs: Processes) -> dict[str, Any]:
            self.truncate()
            operators = self.start_operators(procs)
            spec = ",".join(f"{name}=http://{urlsplit(url).netloc}"
                            for name, url in operators.items())
            urls = self.start_apis(procs, "express", SMSGW_OPERATORS=spec)
            self.start_background(procs, "express", "relay", SMSGW_OPERATORS=spec)
            # The backlog: normal SMS of 100 recipients, accepted and published, no worker yet.
            # A little over the target, since the worker finishes some before express starts.
            wanted = math.ceil(plan.backlog_recipients * 1.01)
            fill_started = time.monotonic()
            for attempt in range(3):
                missing = wanted - self.services.count("sms_status WHERE type = 'normal'")
                if missing <= 0:
                    break
                requests = math.ceil(missing / 100)
                self.loadtest(f"express_backlog{attempt}", urls, rps=plan.backlog_rps,
                              duration=max(1.0, requests / plan.backlog_rps),
                              concurrency=32, recipients=100)
            filled_s = time.monotonic() - fill_started
            published_s = wait_until(
                "the relay to publish the backlog",
                lambda: self.services.count("outbox_events WHERE status = 'pending'") == 0,
                timeout=300)
            queued = unfinished_normal()
            self.start_workers(procs, "express", spec)
            wait_until("the worker's first delivery", lambda: unfinished_normal() < queued,
                       timeout=60)
            backlog = unfinished_normal()
            started = time.monotonic()
            result = self.measured(procs, "express", urls, rps=plan.express_rps,
                                   duration=plan.express_seconds, concurrency=64,
                                   express_ratio=1.0, wait_delivery=True)
            left = unfinished_normal()
            drained = backlog - left
            result.update(
                backlog_recipients=backlog, backlog_filled_s=round(filled_s, 1),
                backlog_published_after_s=round(published_s, 1),
                normal_unfinished_at_end=left,
                normal_drained_per_s=round(drained / (time.monotonic() - started), 1),
            )
            return result

        with self.processes("express") as procs:
            self.record("express", "2 operator-sim, 2 api, relay; "
                        f"{plan.backlog_recipients:,} normal recipients queued, then the worker "
                        f"starts and express goes at {plan.express_rps} req/s for "
                        f"{plan.express_seconds:g} s", lambda: measure(procs))


def _raise(exc: Exception) -> dict[str, Any]:
    raise exc


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError) as exc:
        return {"error": str(exc)}


def _brief(record: dict[str, Any]) -> str:
    if "result" in record:
        best = record["result"]["best"]
        return f"best {best['tx_per_s']:,.0f} tx/s at {best['concurrency']} connections"
    doc = record.get("loadtest") or {}
    rate = report.ok_per_s(doc) or 0.0
    text = (f"{doc.get('ok', 0):,} ok of {doc.get('sent', 0):,}, {rate:,.0f} ok/s, "
            f"p99 {(doc.get('latency_ms') or {}).get('p99', '?')} ms")
    delivery = doc.get("delivery")
    if delivery:
        text += f", delivered/s {delivery.get('delivered_per_s')}"
        express = ((delivery.get("latency_ms") or {}).get("express") or {})
        if express.get("count"):
            text += f", express p50/p99 {express.get('p50')}/{express.get('p99')} ms"
    return text


# ---------------------------------------------------------------- facts about the run


def machine_info(services: Services) -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
        "kernel": platform.release(), "loadavg_at_start": os.getloadavg(),
    }
    with contextlib.suppress(OSError):
        meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0]
        info["memory_gib"] = round(int(meminfo.split()[1]) / 2**20, 1)
    try:
        row = services.sql("SELECT VERSION(), @@innodb_flush_log_at_trx_commit, "
                           "@@innodb_buffer_pool_size, @@sync_binlog, @@log_bin",
                           database=None)[0]
        info.update(mariadb_version=row[0], innodb_flush_log_at_trx_commit=int(row[1]),
                    innodb_buffer_pool_mib=int(row[2]) // 2**20, sync_binlog=int(row[3]),
                    log_bin=bool(row[4]))
    except Exception as exc:
        info["mariadb_error"] = str(exc)
    info["rabbitmq_version"] = services.rabbitmq_version()
    return info


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "--no-optional-locks", *args], cwd=ROOT,
                              capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def gateway_settings(env: dict[str, str]) -> dict[str, Any]:
    """The settings that shape the figures, as the gateway's processes read them."""
    from smsgw_app.config import Settings

    settings = Settings.from_env(env)
    names = ("workers", "express_workers", "prefetch", "relay_express_workers",
             "relay_normal_workers", "relay_batch", "accept_batch", "max_backlog",
             "operator_retries", "log_level")
    return {f"SMSGW_{name.upper()}": getattr(settings, name) for name in names
            if hasattr(settings, name)}


# ---------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[2:]))
    parser.add_argument("--only", type=lambda s: [g.strip() for g in s.split(",") if g.strip()],
                        default=list(GROUPS),
                        help=f"scenarios to run, comma-separated, of {','.join(GROUPS)}")
    parser.add_argument("--quick", action="store_true",
                        help="seconds instead of minutes: a smoke check, not a measurement")
    parser.add_argument("--database", default="smsgw_bench",
                        help="the database to create afresh and drop (default %(default)s)")
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306",
                        help="the MariaDB server, no database (default %(default)s)")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--log-level", default="INFO",
                        help="SMSGW_LOG_LEVEL of the gateway's processes (default %(default)s)")
    parser.add_argument("--env", action="append", default=[], metavar="SMSGW_X=VALUE",
                        help="a setting for the gateway's processes (repeatable)")
    parser.add_argument("--plan", action="append", default=[], metavar="FIELD=VALUE",
                        help="change one of the plan's durations, rates or concurrencies "
                             f"(repeatable): {', '.join(Plan.__dataclass_fields__)}")
    return parser


def with_changes(plan: Plan, changes: list[str]) -> Plan:
    """`plan` with FIELD=VALUE changes, each VALUE of the field's type."""
    values: dict[str, Any] = {}
    for change in changes:
        name, _, raw = change.partition("=")
        if name not in Plan.__dataclass_fields__ or not raw:
            raise ValueError(f"--plan {change!r}: expected FIELD=VALUE, FIELD one of "
                             f"{', '.join(Plan.__dataclass_fields__)}")
        kind = type(getattr(plan, name))
        values[name] = kind(raw) if kind is not float else float(raw)
    return replace(plan, **values)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    unknown = [g for g in args.only if g not in GROUPS]
    if unknown:
        print(f"bench: unknown scenario(s) {', '.join(unknown)}; choose from "
              f"{', '.join(GROUPS)}", file=sys.stderr)
        return 2
    overrides = dict(item.split("=", 1) for item in args.env if "=" in item)
    services = Services(args.mysql_url, args.amqp_url, args.database)
    for name, host, port in services.endpoints():
        if not reachable(host, port):
            print(f"bench: {name} is not reachable on {host}:{port}", file=sys.stderr)
            return 2

    load = os.getloadavg()[0]
    if load > 1.0:
        print(f"bench: warning: the box is busy (load average {load:.1f}); other work will "
              "lower the figures (each scenario's CPU sample shows it as 'other')",
              file=sys.stderr)
    try:
        plan = with_changes(QUICK if args.quick else FULL, args.plan)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    bench = Bench(services, plan, Path(), overrides, args.log_level)
    try:
        settings = gateway_settings(bench.env("settings"))
    except Exception as exc:  # a bad --env: the gateway would refuse it too
        print(f"bench: configuration error: {exc}", file=sys.stderr)
        return 2
    logdir = bench.logdir = Path(tempfile.mkdtemp(prefix="smsgw-bench-"))
    started = datetime.now(UTC)
    date = started.astimezone().strftime("%Y-%m-%d")
    stem = date + ("-quick" if args.quick else "")
    if set(args.only) != set(GROUPS):
        stem += "-only-" + "-".join(args.only)
    print(f"bench: logs in {logdir}", flush=True)
    results: dict[str, Any] = {
        "date": date,
        "command": _command(argv),
        "started_at": started.isoformat(timespec="seconds"),
        "quick": args.quick, "only": args.only, "plan": _plan(plan),
        "machine": machine_info(services), "git": git_info(),
        "settings": settings,
        "notes": ["The message, outbox and ledger tables are emptied before each scenario "
                  "(and between the accept runs), so every run starts from the same tables.",
                  "Throughputs count accepted (2xx) requests per second of the load phase; "
                  "latencies are the load generator's, client side."],
        "logs": str(logdir),
    }
    status = 0
    try:
        services.sql(f"DROP DATABASE IF EXISTS `{args.database}`", database=None)
        services.sql(f"CREATE DATABASE `{args.database}` CHARACTER SET utf8mb4", database=None)
        for step in (["migrate"], ["seed", "--users", str(USERS), "--balance", str(BALANCE)]):
            done = subprocess.run(smsgw(*step), cwd=ROOT, env=bench.env("setup"),
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines()
                raise ScenarioError(f"smsgw {step[0]} failed: {lines[-1] if lines else '?'}")
        for group in GROUPS:
            if group in args.only:
                try:
                    getattr(bench, group)()
                except Exception as exc:  # a scenario's own failures are in its record
                    print(f"bench: {group}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    results.setdefault("errors", {})[group] = f"{type(exc).__name__}: {exc}"
                    status = 1
    except ScenarioError as exc:
        print(f"bench: {exc} (logs in {logdir})", file=sys.stderr)
        results["setup_error"] = str(exc)
        status = 1
    finally:
        if not args.keep_database:
            with contextlib.suppress(Exception):
                services.sql(f"DROP DATABASE IF EXISTS `{args.database}`", database=None)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["scenarios"] = bench.scenarios
    results["figures"] = report.derive_figures(bench.scenarios)
    results["targets"] = report.evaluate(results["figures"], bench.scenarios,
                                         int(results["machine"].get("cpus") or 2))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.results_dir / f"{stem}.json", args.results_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(report.markdown(results))
    print(report.markdown(results))
    print(f"bench: wrote {json_path} and {md_path.name}; logs in {logdir}")
    if any(r["status"] != "ok" for r in bench.scenarios.values()):
        status = status or 1
    return status


def _command(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    if os.environ.get("MAKELEVEL") and not args:
        return "make bench"
    return " ".join([".venv/bin/python benchmarks/run.py", *args])


def _plan(plan: Plan) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in plan.__dataclass_fields__}


if __name__ == "__main__":
    sys.exit(main())
