"""The reference limit: the API's accept transaction with nothing but the database driver.

    .venv/bin/python benchmarks/reference_limit.py \\
        --database-url mysql+asyncmy://root@127.0.0.1:3306/bench_ref [--json]

Why it exists: a figure like "3,000 accepted requests/s" means little on its
own, since it mostly measures the machine and MariaDB's commit path. This
script is the yardstick for the same box: the exact transaction that
`POST /sms/send` commits for one request with one recipient, issued by a
minimal asyncio loop over the same driver (asyncmy), with no HTTP, no
validation, no framework, no SQLAlchemy. Its best throughput over a sweep of
concurrencies is the ceiling the API could reach on this machine; the API's
figure divided by it is the share of that ceiling the gateway keeps.

What is sent, statement for statement as the API's SQL adapter sends it
(smsgw_adapters/sql: messages.add, outbox.add, ledger.apply/_debit; checked
against MariaDB's session counters), on a connection with autocommit off
(the transaction begins implicitly, as under SQLAlchemy, so no BEGIN), READ
COMMITTED, utf8mb4 and the FOUND_ROWS client flag:

    INSERT INTO sms_status (...)           one PENDING row
    INSERT INTO outbox_events (...)        the delivery as JSON, as Delivery.to_payload()
    INSERT INTO user_transactions (...)    the charge row
    UPDATE user_balances SET balance = balance + -cost, last_updated = ?
        WHERE user_id = ? AND balance + -cost >= 0     (no row: refused, ROLLBACK)
    COMMIT

Not sent: the two round trips SQLAlchemy's pool adds to every request (a
COM_PING at checkout, pool_pre_ping, and a ROLLBACK when the connection goes
back to the pool after the commit). They are not part of the transaction, so
the ceiling leaves them out; `--pool-round-trips` adds them, to price them.

Each of C tasks owns one connection and runs transactions back to back (a
closed loop) for `--duration` seconds after `--warmup` seconds; the latency
of one transaction is its first statement to its COMMIT's answer. The
customer of each transaction is uniform over `--users` customers from
`--first-user`, or, with `--hot-share H`, the first one with probability H
and the others uniformly (as `smsgw loadtest` picks them). It needs a
migrated database whose customers have balances (`smsgw migrate`, `smsgw
seed`), and it leaves its rows behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncmy
from asyncmy.constants import CLIENT

INSERT_STATUS = (
    "INSERT INTO sms_status (user_id, status, type, recipient, provider, sms_identifier, "
    "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload, priority, "
    "status, attempts, next_run_at, created_at, updated_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
INSERT_CHARGE = (
    "INSERT INTO user_transactions (user_id, amount, transaction_type, description, "
    "transaction_id, created_at) VALUES (%s, %s, %s, %s, %s, %s)"
)
DEBIT = (
    "UPDATE user_balances SET balance=(user_balances.balance + %s), last_updated=%s "
    "WHERE user_balances.user_id = %s AND user_balances.balance + %s >= %s"
)
TEXT = "Load test message from smsgw"  # smsgw loadtest's text: one GSM-7 segment, price 1
COST = 1


async def accept(conn: Any, user_id: int, pool_round_trips: bool) -> bool:
    """One accepted request with one recipient; False when the balance refused it."""
    if pool_round_trips:
        await conn.ping(reconnect=False)
    now = datetime.now(UTC)
    at = now.replace(tzinfo=None)  # naive UTC, as UtcDateTime binds it
    at_s = at.replace(microsecond=0)  # the columns without fractions get whole seconds
    sms = str(uuid.uuid4())
    recipient = f"+4479{random.randrange(10**8):08d}"  # as smsgw loadtest numbers them
    payload = json.dumps({
        "sms_identifier": sms, "user_id": user_id, "type": "normal", "text": TEXT,
        "recipients": [recipient], "unit_share": COST, "accepted_at": now.isoformat(),
    })
    async with conn.cursor() as cur:
        await cur.execute(INSERT_STATUS, (user_id, "PENDING", "normal", recipient, "", sms, at, at))
        await cur.execute(INSERT_OUTBOX, ("sms", sms, "sms.send", payload, 0, "pending", 0,
                                          at, at_s, at))
        await cur.execute(INSERT_CHARGE, (user_id, -COST, "charge",
                                          f"normal sms {sms} to 1 recipient(s)",
                                          f"charge:{sms}", at_s))
        await cur.execute(DEBIT, (-COST, at_s, user_id, -COST, 0))
        debited: bool = cur.rowcount == 1
    if debited:
        await conn.commit()
    else:
        await conn.rollback()
    if pool_round_trips:
        await conn.rollback()
    return debited


LOCK_BALANCES = (
    "SELECT user_id, balance FROM user_balances WHERE user_id IN ({}) "
    "ORDER BY user_id FOR UPDATE"
)
MOVE_BALANCES = (
    "UPDATE user_balances SET balance=(user_balances.balance + "
    "CASE user_balances.user_id {} END), last_updated=%s WHERE user_balances.user_id IN ({})"
)


async def accept_group(conn: Any, user_ids: list[int], pool_round_trips: bool) -> int:
    """`--group N`: N one-recipient requests in one transaction, as the API groups
    concurrent sends (SmsSender.send_many): one multi-row insert per table, the
    accounts locked in user order, one UPDATE … CASE for the balances. Returns how many
    were accepted (all or, when the balances refuse one, none: the API retries
    without it; this yardstick just counts the group refused)."""
    if pool_round_trips:
        await conn.ping(reconnect=False)
    now = datetime.now(UTC)
    at = now.replace(tzinfo=None)
    at_s = at.replace(microsecond=0)
    status_rows, outbox_rows, charge_rows = [], [], []
    for user_id in user_ids:
        sms = str(uuid.uuid4())
        recipient = f"+4479{random.randrange(10**8):08d}"
        payload = json.dumps({
            "sms_identifier": sms, "user_id": user_id, "type": "normal", "text": TEXT,
            "recipients": [recipient], "unit_share": COST, "accepted_at": now.isoformat(),
        })
        status_rows.append((user_id, "PENDING", "normal", recipient, "", sms, at, at))
        outbox_rows.append(("sms", sms, "sms.send", payload, 0, "pending", 0, at, at_s, at))
        charge_rows.append((user_id, -COST, "charge", f"normal sms {sms} to 1 recipient(s)",
                            f"charge:{sms}", at_s))
    moved: dict[int, int] = {}
    for user_id in user_ids:
        moved[user_id] = moved.get(user_id, 0) - COST
    users = sorted(moved)
    async with conn.cursor() as cur:
        await cur.executemany(INSERT_STATUS, status_rows)
        await cur.executemany(INSERT_OUTBOX, outbox_rows)
        await cur.executemany(INSERT_CHARGE, charge_rows)
        await cur.execute(LOCK_BALANCES.format(", ".join(["%s"] * len(users))), users)
        balances = dict(await cur.fetchall())
        covered = all(balances.get(u, 0) + m >= 0 for u, m in moved.items())
        if covered:
            cases = " ".join(["WHEN %s THEN %s"] * len(moved))
            await cur.execute(
                MOVE_BALANCES.format(cases, ", ".join(["%s"] * len(moved))),
                [*(x for u, m in moved.items() for x in (u, m)), at_s, *moved],
            )
    if covered:
        await conn.commit()
    else:
        await conn.rollback()
    if pool_round_trips:
        await conn.rollback()
    return len(user_ids) if covered else 0


@dataclass
class Level:
    """What one concurrency level measured."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)  # seconds, committed ones
    refused: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time: is the client the bottleneck?
    box_busy_s: float = 0.0  # the whole machine's: did anything else compete?

    def summary(self) -> dict[str, Any]:
        done = sorted(self.latencies)
        return {
            "concurrency": self.concurrency,
            "transactions": len(done),
            "refused": self.refused,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "tx_per_s": round(len(done) / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "client_cpu_share": round(self.cpu_s / self.elapsed_s, 3) if self.elapsed_s else 0.0,
            "box_busy_cores": round(self.box_busy_s / self.elapsed_s, 2) if self.elapsed_s else 0.0,
            "latency_ms": {
                name: round(percentile(done, q) * 1000, 2)
                for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0))
            },
        }


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def box_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(t) for t in stat.readline().split()[1:9]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # not idle, not iowait


def connect_args(url: str) -> dict[str, Any]:
    """asyncmy.connect() arguments from mysql[+asyncmy]://user[:password]@host[:port]/database."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("mysql") or not parts.path.strip("/"):
        raise ValueError(f"{url!r}: expected mysql+asyncmy://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.strip("/"),
        "charset": "utf8mb4",
        "autocommit": False,
        "client_flag": CLIENT.FOUND_ROWS,  # as SQLAlchemy's MySQL dialects connect
        "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    }


class Users:
    def __init__(self, users: int, first_user: int, hot_share: float) -> None:
        self.users, self.first_user, self.hot_share = users, first_user, hot_share

    def pick(self) -> int:
        """As `smsgw loadtest` picks: the hot customer, else uniform over the others."""
        if self.users == 1 or (self.hot_share and random.random() < self.hot_share):
            return self.first_user
        if self.hot_share:
            return self.first_user + 1 + random.randrange(self.users - 1)
        return self.first_user + random.randrange(self.users)


async def run_level(args: argparse.Namespace, concurrency: int) -> Level:
    level = Level(concurrency)
    users = Users(args.users, args.first_user, args.hot_share)
    conns = await asyncio.gather(*(asyncmy.connect(**connect_args(args.database_url))
                                   for _ in range(concurrency)))
    loop = asyncio.get_running_loop()
    start = loop.time() + args.warmup
    stop = start + args.duration

    async def client(conn: Any) -> None:
        while (began := loop.time()) < stop:
            try:
                if args.group > 1:
                    ok = await accept_group(conn, [users.pick() for _ in range(args.group)],
                                            args.pool_round_trips)
                else:
                    ok = await accept(conn, users.pick(), args.pool_round_trips)
            except asyncmy.errors.Error as exc:  # deadlock, lock wait timeout, ...
                if began >= start:
                    kind = f"{type(exc).__name__}({exc.args[0] if exc.args else ''})"
                    level.errors[kind] = level.errors.get(kind, 0) + 1
                await conn.rollback()
                continue
            if began < start:
                continue  # warming up: connections, buffer pool, the server's caches
            if ok:  # one latency per request: its group's transaction time
                level.latencies.extend([loop.time() - began] * max(1, args.group))
            else:
                level.refused += max(1, args.group)

    try:
        tasks = [asyncio.create_task(client(c)) for c in conns]
        await asyncio.sleep(max(0.0, start - loop.time()))
        cpu0, box0, wall0 = time.process_time(), box_busy_s(), loop.time()
        await asyncio.gather(*tasks)
        level.elapsed_s = loop.time() - wall0
        level.cpu_s = time.process_time() - cpu0
        level.box_busy_s = box_busy_s() - box0
    finally:
        for conn in conns:
            conn.close()
    return level


async def sweep(args: argparse.Namespace) -> dict[str, Any]:
    levels = []
    for concurrency in args.concurrency:
        level = (await run_level(args, concurrency)).summary()
        levels.append(level)
        if not args.json:
            print(_line(level), flush=True)
    best = max(levels, key=lambda level: level["tx_per_s"])
    return {
        "config": {
            "database": connect_args(args.database_url)["database"],
            "concurrency": args.concurrency, "duration_s": args.duration,
            "warmup_s": args.warmup, "users": args.users, "first_user": args.first_user,
            "hot_share": args.hot_share, "pool_round_trips": args.pool_round_trips,
            "group": args.group,
        },
        "levels": levels,
        "best": best,
    }


def _line(level: dict[str, Any]) -> str:
    lat = level["latency_ms"]
    problems = f"  refused {level['refused']}" if level["refused"] else ""
    if level["errors"]:
        problems += f"  errors {level['errors']}"
    return (f"C={level['concurrency']:>4}  {level['tx_per_s']:>8.1f} tx/s  "
            f"p50 {lat['p50']:6.2f} ms  p99 {lat['p99']:6.2f} ms  "
            f"client CPU {level['client_cpu_share']:.0%}  "
            f"box {level['box_busy_cores']:.2f} cores busy{problems}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True,
                        help="mysql+asyncmy://USER[:PASSWORD]@HOST[:PORT]/DATABASE, migrated "
                             "and seeded")
    parser.add_argument("--concurrency", default="4,8,16,32,64,128",
                        type=lambda s: [int(c) for c in s.split(",")],
                        help="connections per level, comma-separated (default %(default)s)")
    parser.add_argument("--duration", type=float, default=4.0,
                        help="measured seconds per level (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="unmeasured seconds before each level (default %(default)s)")
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--first-user", type=int, default=1)
    parser.add_argument("--hot-share", type=float, default=0.0,
                        help="share of transactions from the first user (0-1)")
    parser.add_argument("--pool-round-trips", action="store_true",
                        help="add the ping and the rollback SQLAlchemy's pool sends per request")
    parser.add_argument("--group", type=int, default=1,
                        help="requests per transaction, as the API groups concurrent sends "
                             "(default 1: the one-request transaction); tx/s then counts "
                             "requests")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        connect_args(args.database_url)
    except ValueError as exc:
        print(f"reference_limit: {exc}", file=sys.stderr)
        return 2
    result = asyncio.run(sweep(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        best = result["best"]
        print(f"best: {best['tx_per_s']:.1f} tx/s at concurrency {best['concurrency']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
