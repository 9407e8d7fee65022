"""Delivery receipts end to end: operator simulators that report them, the gateway's
receipts route, and one read of the recipients and the ledger to check them against.

The simulators (`smsgw operator-sim --receipt-url …`) post to the gateway's API
port, which is known before the gateway starts (Gateway picks it on creation), so
they start first and the gateway is configured with their URLs. Databases and
queues are named `smsgw_rx_…`: this module's own, dropped and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx
import pymysql

from tests.integration.harness import SMSGW, Gateway, wait_until
from tests.integration.operators import _listening_url
from tests.mariadb import mariadb_database
from tests.services import RABBITMQ_URL, RUN_ID, need_rabbitmq

PLAN = "delivered=0.85,undelivered=0.08,expired=0.02,none=0.05"
FINAL = ("DELIVERED", "UNDELIVERED", "EXPIRED")  # what a receipt moves a DONE recipient to
REFUNDED_BY_RECEIPT = ("UNDELIVERED", "EXPIRED")
PRICES = {"normal": 1, "express": 3}


def rx_name(purpose: str) -> str:
    """A queue name of this module and run: `smsgw_rx_<purpose>_<run>_<n>`."""
    return f"smsgw_rx_{purpose}_{RUN_ID}_{uuid.uuid4().hex[:6]}"


async def _delete_queues(names: list[str]) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        for name in names:
            for delete in ("queue_delete", "exchange_delete"):  # a failure closes its channel
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                    await getattr(channel, delete)(name)


@contextmanager
def rx_queues() -> Iterator[dict[str, str]]:
    names = {"SMSGW_EXPRESS_QUEUE": rx_name("express"), "SMSGW_NORMAL_QUEUE": rx_name("normal"),
             "SMSGW_DEAD_LETTER_QUEUE": rx_name("dead")}
    try:
        yield names
    finally:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _delete_queues(list(names.values()))).result()


def gateway_env(mode: str, workdir: Path, stack: ExitStack, **extra: str) -> dict[str, str]:
    """The environment of an `embedded` (SQLite, in-process bus) or `split` (MariaDB,
    RabbitMQ) gateway; SMSGW_OPERATORS is the caller's."""
    env = {**os.environ, "SMSGW_METRICS_PORT": "0", "SMSGW_LOG_FORMAT": "text",
           "SMSGW_DELIVERY_LEASE_S": "10", **extra}
    if mode == "embedded":
        env["SMSGW_DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir / 'smsgw.db'}"
        env["SMSGW_BROKER_URL"] = "memory://"
        return env
    need_rabbitmq()
    env["SMSGW_DATABASE_URL"] = stack.enter_context(mariadb_database("rx"))
    env["SMSGW_BROKER_URL"] = RABBITMQ_URL
    env.update(stack.enter_context(rx_queues()))
    return env


def new_gateway(mode: str, workdir: Path, stack: ExitStack, **extra: str) -> Gateway:
    """A gateway not started yet (its port is chosen), stopped when `stack` closes."""
    workdir.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(mode, gateway_env(mode, workdir, stack, **extra), workdir)
    stack.callback(gateway.stop)
    return gateway


# --- operator simulators reporting receipts -------------------------------------------


@dataclass
class ReceiptSim:
    """An `smsgw operator-sim` posting its receipts to a gateway's receipts route."""

    name: str
    token: str
    process: subprocess.Popen[bytes]
    url: str = ""

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/stats", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def receipts(self) -> dict[str, Any]:
        """{"reported": {message_id: status}, "none": [message_id, …]}."""
        response = httpx.get(f"{self.url}/receipts", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def control(self, **settings: Any) -> None:
        httpx.post(f"{self.url}/control", json=settings, timeout=10).raise_for_status()

    @property
    def setting(self) -> str:
        """Its entry in SMSGW_OPERATORS, with its receipt token."""
        return f"{self.name}={self.url}?receipt_token={self.token}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sims(stack: ExitStack, workdir: Path, gateway: Gateway,
               *specs: dict[str, Any]) -> list[ReceiptSim]:
    """One simulator per spec (`name`, optional `fail_rate`, `latency_ms`, `seed`,
    `receipt_delay_ms`, `receipts`: PLAN by default), each reporting to `gateway`."""
    sims: list[ReceiptSim] = []
    for spec in specs:
        name, token = spec["name"], f"rx-{spec['name']}-{uuid.uuid4().hex}"
        args = ["operator-sim", "--name", name, "--port", "0",
                "--receipt-url", f"{gateway.url}/operators/{name}/receipts",
                "--receipt-token", token, "--receipts", spec.get("receipts", PLAN)]
        for option in ("fail_rate", "latency_ms", "seed", "receipt_delay_ms"):
            if option in spec:
                args += [f"--{option.replace('_', '-')}", str(spec[option])]
        log = (workdir / f"operator-{name}.log").open("ab")
        sim = ReceiptSim(name, token, subprocess.Popen(
            [*SMSGW, *args], stdout=subprocess.PIPE, stderr=log))
        stack.callback(sim.stop)
        sims.append(sim)
    for sim in sims:
        sim.url = _listening_url(sim)  # type: ignore[arg-type]  # name and process suffice
    gateway.env["SMSGW_OPERATORS"] = ",".join(sim.setting for sim in sims)
    return sims


# --- the gateway's side ----------------------------------------------------------------


def post_receipts(gateway: Gateway, operator: str, token: str,
                  receipts: list[dict[str, str]]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with gateway.client() as client:
        return client.post(f"/operators/{operator}/receipts", json=receipts, headers=headers)


def taken(response: httpx.Response) -> dict[str, int]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def metric(gateway: Gateway, name: str, **labels: str) -> float:
    """A sample of the API process's /metrics (0 when it has none yet)."""
    with gateway.client() as client:
        text = client.get("/metrics").text
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    total = 0.0
    for line in text.splitlines():
        found = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if found and wanted <= set((found.group(1) or "").split(",")):
            total += float(found.group(2))
    return total


@dataclass(frozen=True)
class Sent:
    cost: int
    share: int  # per recipient: segments x price
    recipients: tuple[str, ...]


def send_sms(gateway: Gateway, user_id: int, index: int, recipients: int) -> tuple[str, Sent]:
    """SMS number `index`: normal or express, one or two segments, so shares differ."""
    sms_type = "express" if index % 3 == 0 else "normal"
    text = "long " * 40 if index % 4 == 1 else f"receipt test {index}"  # 200 chars: 2 segments
    numbers = tuple(f"0912{index:03d}{k:04d}" for k in range(recipients))
    with gateway.client() as client:
        response = client.post("/sms/send", json={
            "customer_id": user_id, "text": text, "recipients": list(numbers), "type": sms_type})
    assert response.status_code == 200, response.text
    body = response.json()
    share = body["segments"] * PRICES[sms_type]
    assert body["cost"] == share * recipients, body
    return body["sms_identifier"], Sent(body["cost"], share, numbers)


@dataclass(frozen=True)
class Row:
    status: str
    provider: str
    message_id: str


@dataclass
class Snapshot:
    """The recipients, ledger and balance of one customer, read in one transaction."""

    rows: dict[tuple[str, str], Row]  # (sms_identifier, recipient) -> Row
    ledger: list[tuple[str, str, int]]  # (transaction_id, type, amount)
    balance: int
    receipts: dict[tuple[str, str], str] = field(default_factory=dict)  # (op, id) -> status
    unmatched: set[tuple[str, str]] = field(default_factory=set)  # kept: no recipient found

    def statuses(self) -> Counter[str]:
        return Counter(row.status for row in self.rows.values())

    def by_message(self) -> dict[tuple[str, str], tuple[str, str]]:
        """(provider, message_id) -> (sms_identifier, recipient) of every DONE-or-later row."""
        return {(row.provider, row.message_id): key for key, row in self.rows.items()
                if row.message_id}


_ROWS = ("SELECT sms_identifier, recipient, status, provider, message_id FROM sms_status"
         " WHERE user_id = ?")
_LEDGER = ("SELECT transaction_id, transaction_type, amount FROM user_transactions"
           " WHERE user_id = ? ORDER BY id")
_BALANCE = "SELECT balance FROM user_balances WHERE user_id = ?"
_RECEIPTS = "SELECT operator, message_id, status, kept FROM operator_receipts"


def snapshot(gateway: Gateway, user_id: int) -> Snapshot:
    """One consistent read: a receipt landing meanwhile is in all of it or none."""
    url = gateway.database_url
    results: list[list[tuple[Any, ...]]] = []
    queries = [(_ROWS, (user_id,)), (_LEDGER, (user_id,)), (_BALANCE, (user_id,)),
               (_RECEIPTS, ())]
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None)
        try:
            conn.execute("BEGIN")
            results = [conn.execute(sql, params).fetchall() for sql, params in queries]
            conn.execute("COMMIT")
        finally:
            conn.close()
    else:
        parts = urlsplit(url)
        my = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                             user=parts.username or "root", password=parts.password or "",
                             database=parts.path.strip("/"))
        try:
            with my.cursor() as cursor:
                cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                for sql, params in queries:
                    cursor.execute(sql.replace("?", "%s"), params)
                    results.append([tuple(row) for row in cursor.fetchall()])
            my.commit()
        finally:
            my.close()
    rows, ledger, balance, receipts = results
    assert len(balance) == 1, balance
    return Snapshot(
        rows={(s, r): Row(status, provider, mid or "") for s, r, status, provider, mid in rows},
        ledger=[(str(t), str(kind), int(a)) for t, kind, a in ledger],
        balance=int(balance[0][0]),
        receipts={(op, mid): status for op, mid, status, _ in receipts},
        unmatched={(op, mid) for op, mid, _, kept in receipts if kept},
    )


def assert_money(snap: Snapshot, sent: dict[str, Sent], top_up: int, refunds_on: bool) -> None:
    """One charge per SMS; exactly one refund of its share per FAILED recipient and,
    with the setting on, per UNDELIVERED or EXPIRED one (none at all for them when it
    is off); none for DELIVERED or DONE; balance == the ledger's sum."""
    assert {key[0] for key in snap.rows} == set(sent)
    assert len(snap.rows) == sum(len(s.recipients) for s in sent.values())
    kinds = Counter(kind for _, kind, _ in snap.ledger)
    assert kinds["topup"] == 1 and sum(a for _, k, a in snap.ledger if k == "topup") == top_up
    charges = sorted((t, a) for t, k, a in snap.ledger if k == "charge")
    assert charges == sorted((f"charge:{sms}", -s.cost) for sms, s in sent.items())
    refunded = ("FAILED", *REFUNDED_BY_RECEIPT) if refunds_on else ("FAILED",)
    expected = sorted((f"refund:{sms}:{recipient}", sent[sms].share)
                      for (sms, recipient), row in snap.rows.items() if row.status in refunded)
    refunds = sorted((t, a) for t, k, a in snap.ledger if k == "refund")
    assert refunds == expected, (len(refunds), len(expected))
    assert set(kinds) <= {"topup", "charge", "refund"}, kinds
    assert snap.balance == sum(a for _, _, a in snap.ledger) == (
        top_up - sum(s.cost for s in sent.values()) + sum(a for _, a in expected))


def api_balance(gateway: Gateway, user_id: int) -> int:
    with gateway.client() as client:
        response = client.get("/balance", params={"user_id": user_id, "limit": 1})
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])


# --- waiting and comparing with what the simulators reported -----------------------------


def sims_settled(sims: list[ReceiptSim], accepted: int) -> bool:
    """Every send taken (`accepted` in all) and every receipt owed acknowledged."""
    stats = [sim.stats() for sim in sims]
    return (sum(s["accepted"] for s in stats) == accepted
            and all(s["receipts"]["pending"] == 0 for s in stats))


def wait_all_reported(gateway: Gateway, user_id: int, sims: list[ReceiptSim], accepted: int,
                      timeout: float = 90) -> Snapshot:
    """Until the simulators took every send and posted every receipt, and each
    recipient is final, or DONE with a message id its simulator never reports."""

    def settled() -> Snapshot | None:
        gateway.check_alive()
        if not sims_settled(sims, accepted):
            return None
        never = {(sim.name, mid) for sim in sims for mid in sim.receipts()["none"]}
        snap = snapshot(gateway, user_id)
        for row in snap.rows.values():
            if row.status in (*FINAL, "FAILED") or (
                    row.status == "DONE" and (row.provider, row.message_id) in never):
                continue
            return None
        return snap

    return wait_until(settled, timeout=timeout, every=0.25)  # type: ignore[no-any-return]


def assert_as_reported(snap: Snapshot, sims: list[ReceiptSim],
                       posted: dict[tuple[str, str], str] | None = None) -> Counter[str]:
    """Each recipient's final status is what its simulator (or the test, `posted`:
    (operator, message id) -> status) reported; those never reported stay DONE; the
    counts per operator and status are the simulator's /stats. Returns the statuses."""
    posted = posted or {}
    named = snap.by_message()
    assert len(named) == len(snap.rows), "a recipient without its operator's message id"
    for sim in sims:
        listing, stats = sim.receipts(), sim.stats()["receipts"]
        reported = {(sim.name, mid): status.upper() for mid, status in listing["reported"].items()}
        never = {(sim.name, mid) for mid in listing["none"]}
        assert not reported.keys() & never
        # Every receipt the simulator had acknowledged names one of our recipients ...
        assert reported.keys() <= named.keys(), sorted(reported.keys() - named.keys())[:5]
        # ... and each is the first (and only) receipt kept for its id, matched.
        for about, status in reported.items():
            assert snap.receipts[about] == status.lower(), about
        assert not reported.keys() & snap.unmatched
        mine = {about: row for about, row in ((k, snap.rows[v]) for k, v in named.items())
                if about[0] == sim.name}
        assert mine.keys() == reported.keys() | never, "a send taken twice or not at all"
        for about, row in mine.items():
            expected = reported.get(about) or posted.get(about, "DONE")
            assert row.status == expected, (about, row, expected)
        counts = Counter(row.status for about, row in mine.items() if about not in posted)
        assert counts["DELIVERED"] == stats["delivered"], (sim.name, counts, stats)
        assert counts["UNDELIVERED"] == stats["undelivered"], (sim.name, counts, stats)
        assert counts["EXPIRED"] == stats["expired"], (sim.name, counts, stats)
        assert counts["DONE"] == stats["none"] - len(never & posted.keys()), (counts, stats)
        assert stats["pending"] == stats["refused"] == 0, stats
    return snap.statuses()
