"""`make chaos`: a Jepsen-style bank workload against the split gateway.

    .venv/bin/python benchmarks/chaos.py [--duration 60] [--kills 30] [--seed N] [--json]

What it runs, all on this machine: two `smsgw api`, one `smsgw relay`, one
`smsgw worker --lane express` and one `--lane normal`, on a MariaDB database
and RabbitMQ queues of this run (`smsgw_chaos_<run>`, dropped and deleted at
the end), and two `smsgw operator-sim` (A fails 20 % of sends, B 5 %, both
refuse numbers starting 0999, and both fail everything for 4 s mid-run). The
gateway reaches MariaDB and RabbitMQ only through TCP forwarders of this
script, so it can cut the gateway's own connections (every one, at once)
without touching the shared servers, which are never stopped.

For `--duration` seconds, client threads send normal and express SMS (1-4
recipients, one or two segments) to both APIs for customers seeded with `smsgw
seed` (three of them can afford a few sends only; 5 % of the numbers are
refused ones), half of them with an Idempotency-Key; a 5xx, a timeout or a
broken connection is retried with the same key and body (a send without a key
is retried only when its connection was refused: otherwise its fate is unknown
to the client). Meanwhile it kills -9 a random gateway process `--kills`
times, evenly spread, restarting each at once, and cuts every connection to
the database and to the broker (twice each by default). Any process that exits
on its own is restarted too, and counted.

Then it drains (every process up, nothing cut) until no recipient is
unfinished, for at most --drain-timeout seconds, and checks, reading the
database directly:

- every recipient of a 200-answered send exists and is terminal (DONE or
  FAILED), and so is every other recipient row;
- per customer, the balance equals the sum of its ledger rows, and is >= 0;
- each SMS has its one charge, of the cost the API answered;
- each FAILED recipient is refunded exactly once, its share; no DONE recipient
  is refunded; no refund without its FAILED recipient;
- one Idempotency-Key never yields two sms_identifiers (nor a 409 for the same
  body), and the stored answer is the one the client got;
- every DONE recipient was accepted by an operator (the simulators'
  `GET /references`).

Counted and reported, but not violations: 5xx answers and timeouts, duplicate
operator sends (a reference accepted twice by one operator, or by both: they
are expected in crash windows), FAILED recipients an operator did accept (the
customer was refunded a message that went out).

It prints one summary line (and, with --json, a JSON document last) and exits
0 when no check failed, 1 on any violation, 2 when it could not run, or did
not do what it was asked (fewer kills or cuts, a cut that found no connection,
no send accepted: the "run_problems" of the summary).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
SMSGW = [sys.executable, "-m", "smsgw_app.cli"]
PRICES = {"normal": 1, "express": 3}
TERMINAL = ("DONE", "FAILED")
GATEWAY = ("api1", "api2", "relay", "worker-express", "worker-normal")
READY_TIMEOUT_S = 60.0
MIN_UPTIME_S = 3.0  # a process is killed only once it has lived this long (started up)


# ---------------------------------------------------------------- TCP forwarders


class Forwarder:
    """127.0.0.1:port -> upstream, byte for byte; `cut()` closes every connection.

    After a cut, new connections are closed at once for `hold_s`, then forwarded again:
    the gateway must notice, and reconnect on its own.
    """

    def __init__(self, name: str, upstream: tuple[str, int]) -> None:
        self.name = name
        self.upstream = upstream
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._refuse_until = 0.0
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self.cuts = 0
        self.connections_cut = 0
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"fwd-{name}")
        self._thread.start()

    def cut(self, hold_s: float = 1.0) -> int:
        """Close every live connection; refuse new ones for `hold_s`. How many were cut."""
        with self._lock:
            self._refuse_until = time.monotonic() + hold_s
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
        self.cuts += 1
        self.connections_cut += len(pairs)
        return len(pairs)

    def live(self) -> int:
        with self._lock:
            return len(self._pairs)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.cut(0)
        self.cuts -= 1
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if time.monotonic() < self._refuse_until:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            server.settimeout(None)
            pair = (client, server)
            with self._lock:
                self._pairs.add(pair)
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst, pair), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket,
              pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pairs.discard(pair)
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------- the run's resources


@dataclass(frozen=True)
class Services:
    mysql_url: str  # mysql://USER[:PASSWORD]@HOST[:PORT]
    amqp_url: str  # amqp://USER:PASSWORD@HOST:PORT/
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def database(self) -> str:
        return f"smsgw_chaos_{self.run}"

    @property
    def queues(self) -> dict[str, str]:
        return {f"SMSGW_{lane.upper()}_QUEUE": f"smsgw_chaos_{self.run}_{lane}"
                for lane in ("express", "normal", "dead_letter")}

    def mysql(self) -> tuple[str, int]:
        parts = urlsplit(self.mysql_url)
        return parts.hostname or "127.0.0.1", parts.port or 3306

    def amqp(self) -> tuple[str, int]:
        parts = urlsplit(self.amqp_url)
        return parts.hostname or "127.0.0.1", parts.port or 5672

    def database_url(self, port: int | None = None) -> str:
        """The run's database, directly or through a forwarder on 127.0.0.1:`port`."""
        parts = urlsplit(self.mysql_url)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else "root@"
        host, real_port = self.mysql()
        where = f"127.0.0.1:{port}" if port else f"{host}:{real_port}"
        return f"mysql+asyncmy://{auth}{where}/{self.database}"

    def broker_url(self, port: int) -> str:
        parts = urlsplit(self.amqp_url)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return f"amqp://{auth}127.0.0.1:{port}{parts.path or '/'}"

    def sql(self, statement: str, *params: Any, database: str | None = "") -> list[tuple[Any, ...]]:
        import pymysql

        parts = urlsplit(self.mysql_url)
        host, port = self.mysql()
        conn = pymysql.connect(host=host, port=port, user=parts.username or "root",
                               password=parts.password or "", autocommit=True,
                               database=self.database if database == "" else database)
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, params or None)
                return [tuple(row) for row in cursor.fetchall()]
        finally:
            conn.close()

    def create(self) -> None:
        self.sql(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4", database=None)

    def drop(self) -> None:
        with contextlib.suppress(Exception):
            self.sql(f"DROP DATABASE IF EXISTS `{self.database}`", database=None)
        with contextlib.suppress(Exception):
            asyncio.run(self._delete_queues())

    async def _delete_queues(self) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            for name in self.queues.values():
                for delete in ("queue_delete", "exchange_delete"):
                    channel = await connection.channel()  # a failed delete closes it
                    with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                        await getattr(channel, delete)(name)


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


# ---------------------------------------------------------------- processes


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
        with open(self.logdir / f"{name}.log", "ab") as log:
            proc.popen = subprocess.Popen([*SMSGW, *proc.argv], env=self.env, stdout=log,
                                          stderr=subprocess.STDOUT, cwd=ROOT,
                                          start_new_session=True)
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
            for proc in self.procs.values():
                if proc.popen is not None and proc.popen.poll() is None:
                    proc.popen.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for proc in self.procs.values():
                if proc.popen is None:
                    continue
                try:
                    proc.popen.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait()


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
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_sim(logdir: Path, name: str, fail_rate: float, latency_ms: float,
              reject_prefix: str) -> Sim:
    # This checkout's simulator (it has /references), whatever code the gateway runs.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(logdir / f"operator-{name}.log", "ab") as log:
        popen = subprocess.Popen(
            [*SMSGW, "operator-sim", "--name", name, "--port", "0", "--fail-rate",
             str(fail_rate), "--latency-ms", str(latency_ms), "--reject-prefix", reject_prefix],
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


# ---------------------------------------------------------------- the load


@dataclass
class Accepted:
    sms: str
    user_id: int
    recipients: tuple[str, ...]
    cost: int
    key: str | None


@dataclass
class Load:
    """What the clients sent and were answered; shared by the client threads."""

    answers: Counter[str] = field(default_factory=Counter)  # "200", "503", "timeout", ...
    accepted: list[Accepted] = field(default_factory=list)
    by_key: dict[tuple[int, str], set[str]] = field(default_factory=dict)
    gave_up: int = 0  # keyed sends still failing after every retry
    unknown: int = 0  # sends without a key that got a 5xx or no answer
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, outcome: str) -> None:
        with self.lock:
            self.requests += 1
            self.answers[outcome] += 1


MAX_TRIES = 12
SIMS = (("A", 0.2, 20.0), ("B", 0.05, 10.0))  # name, share of sends answered 503, latency ms
REFUSED = "0999"  # both simulators refuse numbers starting with it
REFUSED_SHARE = 0.05
DOWN_S = 4.0  # both operators answer 503 to everything for this long, once, mid-run
TTL_S = 120.0  # SMSGW_MESSAGE_TTL_S: unfinished recipients expire (refunded), a bounded drain
POOR = 3  # customers seeded with POOR_BALANCE only
POOR_BALANCE = 40
RETRY_AFTER_END_S = 20.0  # a keyed send still failing this long after the load's end: given up
REQUEST_TIMEOUT_S = 5.0


def client_loop(load: Load, urls: list[str], users: list[int], until: float,
                rng: random.Random) -> None:
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        n = 0
        while time.monotonic() < until:
            n += 1
            user = rng.choice(users)
            count = rng.randint(1, 4)
            # REFUSED_SHARE of the numbers are refused (422) by both operators: FAILED, refunded.
            recipients = sorted({
                f"{REFUSED if rng.random() < REFUSED_SHARE else '0912'}{rng.randrange(10**7):07d}"
                for _ in range(count)})
            sms_type = "express" if rng.random() < 0.3 else "normal"
            text = "chaos " * 30 if rng.random() < 0.25 else f"chaos {n}"  # 1 or 2 segments
            body = {"customer_id": user, "text": text, "recipients": recipients,
                    "type": sms_type}
            key = uuid.uuid4().hex if rng.random() < 0.5 else None
            headers = {"Idempotency-Key": key} if key else {}
            for attempt in range(MAX_TRIES):
                url = urls[(n + attempt) % len(urls)]
                try:
                    response = client.post(f"{url}/sms/send", json=body, headers=headers)
                except httpx.ConnectError:
                    outcome = "refused"  # that API is down (killed): nothing was sent
                except httpx.TimeoutException:
                    outcome = "timeout"
                except httpx.TransportError:
                    outcome = "connection"  # broken mid-request: the outcome is unknown
                else:
                    outcome = str(response.status_code)
                load.answer(outcome)
                if outcome == "200":
                    answer = response.json()
                    with load.lock:
                        load.accepted.append(Accepted(
                            str(answer["sms_identifier"]), user, tuple(recipients),
                            int(answer["cost"]), key))
                        if key:
                            load.by_key.setdefault((user, key), set()).add(
                                str(answer["sms_identifier"]))
                    break
                retryable = (outcome in ("refused", "timeout", "connection")
                             or outcome.startswith("5"))
                if not retryable:
                    break  # 402 (spent), 409, 422: an answer, final
                if key is None and outcome != "refused":  # a refused one was not sent at all
                    with load.lock:
                        load.unknown += 1
                    break
                if attempt == MAX_TRIES - 1 or time.monotonic() > until + RETRY_AFTER_END_S:
                    with load.lock:
                        load.gave_up += 1
                    break
                time.sleep(min(2.0, 0.1 * 2 ** attempt) * (0.5 + rng.random()))


# ---------------------------------------------------------------- the checks


def check(services: Services, load: Load, sims: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures and violations of a drained run, from the database and the simulators."""
    violations: Counter[str] = Counter()
    examples: dict[str, str] = {}

    def violate(kind: str, example: object) -> None:
        violations[kind] += 1
        examples.setdefault(kind, str(example)[:300])

    rows = {(str(s), str(r)): (str(st), int(u)) for s, r, st, u in services.sql(
        "SELECT sms_identifier, recipient, status, user_id FROM sms_status")}
    per_sms: Counter[str] = Counter(s for s, _ in rows)
    txs = [(int(u), str(kind), str(tid), int(amount)) for u, kind, tid, amount in services.sql(
        "SELECT user_id, transaction_type, transaction_id, amount FROM user_transactions")]
    balances = {int(u): int(b) for u, b in services.sql(
        "SELECT user_id, balance FROM user_balances")}

    # Every recipient of a 200-answered send exists and is terminal; so is every row.
    for sent in load.accepted:
        for recipient in sent.recipients:
            if (sent.sms, recipient) not in rows:
                violate("answered_recipient_missing", f"{sent.sms}:{recipient}")
    statuses = Counter(status for status, _ in rows.values())
    for (sms, recipient), (status, _) in rows.items():
        if status not in TERMINAL:
            violate("recipient_not_terminal", f"{sms}:{recipient} {status}")

    # Balance == sum of the ledger, and never negative.
    ledger: Counter[int] = Counter()
    for user, _, _, amount in txs:
        ledger[user] += amount
    for user in set(balances) | set(ledger):
        if balances.get(user, 0) != ledger[user]:
            violate("balance_not_ledger_sum", f"user {user}: balance {balances.get(user)}"
                                              f" != sum {ledger[user]}")
        if balances.get(user, 0) < 0:
            violate("negative_balance", f"user {user}: {balances[user]}")

    # One charge per SMS, of the answered cost; refunds exactly for FAILED recipients.
    charges = {tid.removeprefix("charge:"): (user, -amount) for user, kind, tid, amount in txs
               if kind == "charge"}
    refunds = {tid: amount for _, kind, tid, amount in txs if kind == "refund"}
    refund_count = Counter(tid for _, kind, tid, _ in txs if kind == "refund")
    for tid, n in refund_count.items():
        if n > 1:
            violate("refunded_twice", tid)
    for sms in per_sms:
        if sms not in charges:
            violate("sms_without_charge", sms)
    for sms in charges:
        if sms not in per_sms:
            violate("charge_without_sms", sms)
    for sent in load.accepted:
        if (sms_charge := charges.get(sent.sms)) and sms_charge[1] != sent.cost:
            violate("charge_not_answered_cost", f"{sent.sms}: {sms_charge[1]} != {sent.cost}")
    expected_refunds = set()
    for (sms, recipient), (status, _) in rows.items():
        tid = f"refund:{sms}:{recipient}"
        if status == "FAILED":
            expected_refunds.add(tid)
            if tid not in refunds:
                violate("failed_not_refunded", tid)
            elif sms in charges and refunds[tid] != charges[sms][1] // per_sms[sms]:
                violate("refund_not_share", f"{tid}: {refunds[tid]}")
        elif status == "DONE" and tid in refunds:
            violate("done_refunded", tid)
    for tid in refunds.keys() - expected_refunds:
        sms, _, recipient = tid.removeprefix("refund:").rpartition(":")
        if (sms, recipient) not in rows:
            violate("refund_without_recipient", tid)
        elif rows[(sms, recipient)][0] not in TERMINAL:
            violate("unfinished_refunded", tid)

    # Idempotency: one key, one sms_identifier; the stored answer is the one given.
    for (user, idem), ids in load.by_key.items():
        if len(ids) > 1:
            violate("key_two_sms", f"user {user} key {idem}: {sorted(ids)}")
    stored = {(int(u), str(k)): json.loads(r) if isinstance(r, str) else r for u, k, r in
              services.sql("SELECT user_id, idem_key, response FROM idempotency_keys")}
    for (user, idem), ids in load.by_key.items():
        answer = stored.get((user, idem))
        if answer is None:
            violate("answered_key_not_stored", f"user {user} key {idem}")
        elif str(answer.get("sms_identifier")) not in ids:
            violate("key_stored_other_sms", f"user {user} key {idem}")
    if load.answers["409"]:
        violations["key_409_same_body"] += load.answers["409"]
        examples.setdefault("key_409_same_body", "a retry with the same key and body got 409")

    # The operators: who accepted what, and how many times.
    accepted_by = {name: set(s["references"]) for name, s in sims.items()}
    everywhere: Counter[str] = Counter()
    for refs in accepted_by.values():
        everywhere.update(refs)
    across = sum(1 for n in everywhere.values() if n > 1)
    same_operator = sum(int(s["stats"]["duplicates"]) for s in sims.values())
    failed_but_sent = 0
    for (sms, recipient), (status, _) in rows.items():
        reference = f"{sms}:{recipient}"
        if status == "DONE" and reference not in everywhere:
            violate("done_never_accepted_by_an_operator", reference)
        if status == "FAILED" and reference in everywhere:
            failed_but_sent += 1

    five_xx = sum(n for k, n in load.answers.items() if k.startswith("5"))
    return {
        "requests": load.requests,
        "answers": dict(sorted(load.answers.items())),
        "accepted_sms": len(load.accepted),
        "keyed_sms": len(load.by_key),
        "five_xx": five_xx,
        "timeouts": load.answers["timeout"] + load.answers["connection"],
        "refused": load.answers["refused"],
        "gave_up": load.gave_up,
        "unknown_unkeyed": load.unknown,
        "sms": len(per_sms),
        "recipients": len(rows),
        "statuses": dict(sorted(statuses.items())),
        "refunds": len(refunds),
        "customers": len(balances),
        "spent_customers": sum(1 for b in balances.values() if b < 4),
        "operator_duplicates": same_operator + across,
        "operator_duplicates_same": same_operator,
        "operator_duplicates_across": across,
        "failed_but_operator_accepted": failed_but_sent,
        "operators": {name: s["stats"] for name, s in sims.items()},
        "violations": dict(sorted(violations.items())),
        "violation_examples": examples,
    }


# ---------------------------------------------------------------- the run


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
        seed_env = {**os.environ, **code, "SMSGW_DATABASE_URL": services.database_url()}
        # The first POOR customers can afford a few sends only: they hit 0 early, and
        # the balance >= 0 check means something; the others last (nearly) the whole run.
        for first, count, units in ((1, POOR, POOR_BALANCE),
                                    (POOR + 1, options.customers - POOR, balance)):
            subprocess.run([*SMSGW, "seed", "--users", str(count), "--first-user", str(first),
                            "--balance", str(units)], env=seed_env, check=True, timeout=120,
                           cwd=ROOT, capture_output=True)
        db = Forwarder("mariadb", services.mysql())
        stack.callback(db.close)
        mq = Forwarder("rabbitmq", services.amqp())
        stack.callback(mq.close)
        sims: dict[str, Sim] = {}
        for name, fail_rate, latency in SIMS:
            sims[name] = start_sim(workdir, name, fail_rate, latency, REFUSED)
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

        # The schedule: kills evenly spread, cuts between them.
        events: list[tuple[float, str]] = [
            (options.duration * (i + 1) / (options.kills + 1), "kill")
            for i in range(options.kills)]
        for i in range(options.cuts):
            events.append((options.duration * (2 * i + 1) / (2 * options.cuts + 1), "cut-db"))
            events.append((options.duration * (2 * i + 2) / (2 * options.cuts + 1), "cut-mq"))
        if options.operators_down > 0:
            events += [(options.duration * 0.45, "operators-down"),
                       (options.duration * 0.45 + options.operators_down, "operators-up")]
        events.sort()
        cut_counts: Counter[str] = Counter()
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
                cut_counts[what] += forwarder.cut(hold_s=1.0)
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
        drained = False
        while time.monotonic() - drain_started < options.drain_timeout:
            cluster.restart_exited()
            unfinished = services.sql(
                "SELECT COUNT(*) FROM sms_status WHERE status NOT IN ('DONE', 'FAILED')")[0][0]
            if unfinished == 0:
                drained = True
                break
            time.sleep(1.0)
        drain_s = time.monotonic() - drain_started
        cluster.stop()
        sim_state = {name: {"stats": sim.get("/stats"),
                            "references": sim.get("/references")["accepted"]}
                     for name, sim in sims.items()}
        summary = check(services, load, sim_state)
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
        # The run did not do what it was asked (a machine too busy for the gateway to
        # come up between kills, say): whatever its checks say, it proves little.
        problems = summary["run_problems"] = []
        for what, n in (("kills", options.kills), ("db_cuts", options.cuts),
                        ("mq_cuts", options.cuts)):
            if summary[what] < n:
                problems.append(f"{what} {summary[what]} < {n}")
        for what in ("db_connections_cut", "mq_connections_cut"):
            if options.cuts and summary[what] == 0:
                problems.append(f"{what} 0")
        if summary["accepted_sms"] == 0:
            problems.append("no send accepted")
        return summary
    raise AssertionError("unreachable")


def summary_line(summary: dict[str, Any]) -> str:
    violations = summary["violations"]
    verdict = ("OK" if not violations else
               "VIOLATIONS " + ", ".join(f"{k}={v}" for k, v in violations.items()))
    if summary.get("run_problems"):
        verdict += f" (INVALID RUN: {'; '.join(summary['run_problems'])})"
    st = summary["statuses"]
    return (
        f"chaos {verdict} | {summary['duration_s']} s, {summary['kills']} kills,"
        f" db cuts {summary['db_cuts']} ({summary['db_connections_cut']} conns),"
        f" mq cuts {summary['mq_cuts']} ({summary['mq_connections_cut']} conns),"
        f" exits {sum(summary['exits'].values())} | {summary['requests']} requests:"
        f" {summary['accepted_sms']} accepted ({summary['keyed_sms']} keyed),"
        f" 5xx {summary['five_xx']}, timeouts/broken {summary['timeouts']},"
        f" refused {summary['refused']},"
        f" gave up {summary['gave_up']} | {summary['recipients']} recipients"
        f" DONE {st.get('DONE', 0)} FAILED {st.get('FAILED', 0)}"
        f" unfinished {summary['recipients'] - st.get('DONE', 0) - st.get('FAILED', 0)},"
        f" {summary['refunds']} refunds, drained {'yes' if summary['drained'] else 'NO'}"
        f" in {summary['drain_s']} s | operator duplicates {summary['operator_duplicates']}"
        f" (same {summary['operator_duplicates_same']},"
        f" across {summary['operator_duplicates_across']}),"
        f" failed-but-sent {summary['failed_but_operator_accepted']} (reported, not violations)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Kill and cut the split gateway under load, then check money and states.")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--kills", type=int, default=30,
                        help="kill -9 of a random gateway process, spread evenly (30)")
    parser.add_argument("--cuts", type=int, default=2,
                        help="cuts of all database and of all broker connections, each (2)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--clients", type=int, default=6, help="client threads (6)")
    parser.add_argument("--customers", type=int, default=20, help="customers seeded (20)")
    parser.add_argument("--drain-timeout", type=float, default=180.0,
                        help="seconds to wait for every recipient to finish (180)")
    parser.add_argument("--operators-down", type=float, default=DOWN_S, metavar="S",
                        help=f"seconds both operators fail every send, mid-run ({DOWN_S:g})")
    parser.add_argument("--ttl", type=float, default=TTL_S, metavar="S",
                        help=f"SMSGW_MESSAGE_TTL_S of the gateway ({TTL_S:g})")
    parser.add_argument("--mysql", default=os.environ.get(
        "SMSGW_CHAOS_MYSQL", "mysql://root@127.0.0.1:3306"), help="the MariaDB server")
    parser.add_argument("--amqp", default=os.environ.get(
        "SMSGW_CHAOS_AMQP", "amqp://guest:guest@127.0.0.1:5672/"), help="the RabbitMQ server")
    parser.add_argument("--workdir", type=Path, default=None, help="where the logs go")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database and queues afterwards")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON too")
    parser.add_argument("--gateway-src", type=Path, default=None, metavar="CHECKOUT",
                        help="run the gateway's code from CHECKOUT/src (e.g. an export of"
                             " another branch); the simulators and checks stay this one's")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.kills < 0 or args.cuts < 0:
        parser.error("--duration must be > 0, --kills and --cuts >= 0")
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    # `timeout` (as `make chaos` uses) sends SIGTERM: clean up as for Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    options = Options(duration=args.duration, kills=args.kills, cuts=args.cuts, seed=seed,
                      clients=args.clients, customers=args.customers,
                      drain_timeout=args.drain_timeout, mysql_url=args.mysql,
                      operators_down=args.operators_down, ttl=args.ttl,
                      amqp_url=args.amqp, workdir=args.workdir, keep=args.keep,
                      gateway_src=args.gateway_src)
    try:
        summary = run(options)
    except (RuntimeError, subprocess.SubprocessError, OSError, httpx.HTTPError) as exc:
        print(f"chaos: cannot run: {exc}", file=sys.stderr)
        return 2
    print(summary_line(summary), flush=True)
    if summary["violations"]:
        for kind, example in summary["violation_examples"].items():
            print(f"  {kind}: e.g. {example}", flush=True)
    if args.json:
        print(json.dumps(summary, sort_keys=True), flush=True)
    if summary["violations"]:
        return 1
    return 2 if summary["run_problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
