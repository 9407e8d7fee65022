"""Closed loops of the accept transaction at each concurrency, and what each level measured."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import asyncmy
from benchmarks.reference.transaction import accept, accept_group, connect_args


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
            print(level_line(level), flush=True)
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


def level_line(level: dict[str, Any]) -> str:
    lat = level["latency_ms"]
    problems = f"  refused {level['refused']}" if level["refused"] else ""
    if level["errors"]:
        problems += f"  errors {level['errors']}"
    return (f"C={level['concurrency']:>4}  {level['tx_per_s']:>8.1f} tx/s  "
            f"p50 {lat['p50']:6.2f} ms  p99 {lat['p99']:6.2f} ms  "
            f"client CPU {level['client_cpu_share']:.0%}  "
            f"box {level['box_busy_cores']:.2f} cores busy{problems}")
