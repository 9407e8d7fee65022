"""Fair share across customers, end to end: a heavy customer's backlog does not make
light customers wait, and the heavy customer keeps the capacity they do not use.

Operators that take 200 ms and 8 sends at once (8 normal workers of one delivery
each; on RabbitMQ one worker of bundles of 8 single-recipient SMS): the gateway
delivers about 40 recipients a second, so the heavy customer's 400 SMS are a
10-second backlog.
First come, first served, a light customer's SMS sent behind it would wait
about that long; in the fair order it waits for about one operator call.
"""

from __future__ import annotations

import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import SMSGW, Gateway, GatewayFactory, wait_until
from tests.integration.operators import operator_sims, operators_setting

pytestmark = pytest.mark.slow

LATENCY_S = 0.2
OPERATORS = f"A=sim://?latency_ms={int(LATENCY_S * 1000)},B=sim://?latency_ms=200"
HEAVY, LIGHT = 5001, (5002, 5003, 5004, 5005)
BACKLOG = 400


def _send(client: httpx.Client, customer: int, text: str, kind: str = "normal") -> str:
    answer = client.post("/sms/send", json={"customer_id": customer, "text": text,
                                            "recipients": ["09121234567"], "type": kind})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["sms_identifier"])


def _finished(gateway: Gateway, customer: int, kind: str | None = None,
              ) -> list[tuple[datetime, datetime]]:
    rows = gateway.query("SELECT created_at, updated_at, type FROM sms_status WHERE user_id = ? "
                         "AND status = 'DONE'", customer)
    rows = [(c, u) for c, u, t in rows if kind is None or t == kind]
    return [(_time(c), _time(u)) for c, u in rows]


def _time(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def eight_at_once(mode: str, processes: int = 1) -> dict[str, str]:
    """Settings for 8 sends in flight over `processes` normal worker processes: the
    in-process bus carries one delivery a message; RabbitMQ carries bundles, so one
    message at a time per process, of 8 / `processes` single-recipient SMS."""
    if mode == "embedded":
        return {"SMSGW_WORKERS": str(8 // processes)}
    return {"SMSGW_WORKERS": "1", "SMSGW_PUBLISH_BUNDLE": str(8 // processes)}


def test_light_customers_are_not_stuck_behind_a_heavy_backlog(
    make_gateway: GatewayFactory, mode: str
) -> None:
    gateway = make_gateway(OPERATORS, **eight_at_once(mode))
    for customer in (HEAVY, *LIGHT):
        gateway.top_up(customer, 10_000)
    with ThreadPoolExecutor(8) as pool, gateway.client() as client:
        list(pool.map(lambda n: _send(client, HEAVY, f"bulk {n}"), range(BACKLOG)))
    queued_at = time.monotonic()
    with gateway.client() as client:
        for round_ in range(4):
            for customer in LIGHT:
                _send(client, customer, f"light {round_}")
            time.sleep(0.4)
    lights = sum(4 for _ in LIGHT)
    wait_until(lambda: sum(len(_finished(gateway, c)) for c in LIGHT) == lights, timeout=30)
    light_done_at = time.monotonic()
    heavy = _finished(gateway, HEAVY)
    # The heavy backlog was still there when the last light SMS finished ...
    assert len(heavy) < BACKLOG * 0.9, len(heavy)
    waits = sorted((done - accepted).total_seconds()
                   for c in LIGHT for accepted, done in _finished(gateway, c))
    # ... and yet each light SMS waited about one operator call, not the backlog's 10 s.
    assert waits[-1] <= 2 * LATENCY_S + 1.0, waits
    # Work-conserving: while the light customers sent, the heavy one got the rest.
    elapsed = light_done_at - queued_at
    assert len(heavy) >= 0.6 * 40 * elapsed - lights, (len(heavy), elapsed)


@pytest.mark.parametrize("mode", ["split"])
def test_two_relays_and_two_workers_per_lane_keep_the_order_and_deliver_each_once(
    make_gateway: GatewayFactory, mode: str, tmp_path: Path
) -> None:
    """On one MariaDB and one RabbitMQ; HTTP operators count what they were sent."""
    with operator_sims(tmp_path / "ops", {"name": "A", "latency_ms": 200},
                       {"name": "B", "latency_ms": 200}) as sims:
        # Two normal worker processes (the gateway's and one more) of 4 sends at once.
        gateway = make_gateway(operators_setting(*sims), SMSGW_EXPRESS_WORKERS="4",
                               **eight_at_once(mode, processes=2))
        extra = [_process(gateway, tmp_path, *args)
                 for args in (["relay"], ["worker", "--lane", "normal"],
                              ["worker", "--lane", "express"])]
        try:
            for customer in (HEAVY, *LIGHT):
                gateway.top_up(customer, 10_000)
            with ThreadPoolExecutor(8) as pool, gateway.client() as client:
                list(pool.map(lambda n: _send(client, HEAVY, f"bulk {n}"), range(BACKLOG)))
            with gateway.client() as client:
                for round_ in range(3):
                    for customer in LIGHT:
                        _send(client, customer, f"light {round_}")
                    _send(client, LIGHT[0], f"otp {round_}", "express")
                    time.sleep(0.4)
            lights = 3 * len(LIGHT) + 3
            wait_until(lambda: sum(len(_finished(gateway, c)) for c in LIGHT) == lights,
                       timeout=30)
            assert len(_finished(gateway, HEAVY)) < BACKLOG * 0.9
            waits = {kind: sorted((done - accepted).total_seconds() for c in LIGHT
                                  for accepted, done in _finished(gateway, c, kind))
                     for kind in ("normal", "express")}
            # A light SMS waits for the relays to see it (20 ms while they keep the
            # queue full or another relay beat them to a pick), for what the queue
            # holds ahead of it, and its own call. Ahead: each relay process's tasks
            # refill in turns to one headroom target (4 to 8 deliveries), so with
            # two processes up to about 16 deliveries in bundles of 4, drained by 2
            # workers a bundle per call: two calls and their transactions. Measured
            # 2026-12-07 on 2 cores with the other core busy: the slowest light SMS
            # 0.59-0.92 s. (Before, a relay that lost its pick to another waited the
            # idle poll, and a process's tasks each filled the queue to their own
            # target: 0.79-1.54 s, over the bound in 2 of 3 runs.)
            assert waits["normal"][-1] <= 2 * LATENCY_S + 1.0, waits
            assert waits["express"][-1] <= LATENCY_S + 0.5, waits
            wait_until(lambda: len(_finished(gateway, HEAVY)) == BACKLOG, timeout=60)
            seen = [sim.stats() for sim in sims]
            assert sum(s["duplicates"] for s in seen) == 0, seen
            assert sum(s["accepted"] for s in seen) == BACKLOG + lights, seen
        finally:
            for process in extra:
                process.send_signal(signal.SIGTERM)
            for process in extra:
                process.wait(30)


def _process(gateway: Gateway, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{'-'.join(args)}.log").open("ab")
    return subprocess.Popen([*SMSGW, *args], env={**gateway.env, "SMSGW_METRICS_PORT": "0"},
                            stdout=log, stderr=subprocess.STDOUT)
