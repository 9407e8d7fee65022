"""`smsgw seed` and `smsgw loadtest` against a real gateway: they work (not how fast)."""

from __future__ import annotations

import json
import os
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymysql
import pytest

from smsgw_app.cli import main
from tests.integration.harness import SMSGW, Gateway, GatewayFactory, free_port
from tests.mariadb import mariadb_database

pytestmark = pytest.mark.slow

USERS, BALANCE = 20, 1000


def smsgw(args: list[str], env: dict[str, str], timeout: float = 60,
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SMSGW, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def ledger(query: Any) -> dict[int, tuple[int, list[tuple[str, str, int]]]]:
    """user_id -> (balance, [(transaction_id, type, amount)]) for every account."""
    rows: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
    for user, tx_id, kind, amount in query(
        "SELECT user_id, transaction_id, transaction_type, amount FROM user_transactions"
    ):
        rows[int(user)].append((str(tx_id), str(kind), int(amount)))
    return {int(user): (int(balance), rows[int(user)])
            for user, balance in query("SELECT user_id, balance FROM user_balances")}


@pytest.mark.parametrize("mode", ["embedded"])
def test_seed_then_loadtest_delivers_every_accepted_recipient(
    make_gateway: GatewayFactory,
) -> None:
    gateway: Gateway = make_gateway()

    seeded = smsgw(["seed", "--users", str(USERS), "--balance", str(BALANCE)], gateway.env)
    assert seeded.returncode == 0, seeded.stderr
    assert seeded.stdout.splitlines()[-1].startswith(
        f"seeded {USERS} users (1..{USERS}) with {BALANCE} units each in ")

    run = smsgw(["loadtest", "--url", gateway.url, "--rps", "50", "--duration", "2",
                 "--users", str(USERS), "--recipients", "2", "--wait-delivery",
                 "--delivery-timeout", "30", "--json"], gateway.env)

    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["sent"] == report["ok"] > 0, report
    assert report["errors"] == {} and report["non_2xx"] == {}, report
    assert report["latency_from"] == "schedule"
    latency = report["latency_ms"]
    assert set(latency) == {"p50", "p90", "p95", "p99", "max"}
    assert 0 <= latency["p50"] <= latency["p90"] <= latency["p95"] <= latency["p99"] \
        <= latency["max"]
    assert report["achieved_rps"] > 0 and report["recipients_per_s"] > 0
    assert report["config"]["rps"] == 50 and report["config"]["recipients"] == 2
    delivery = report["delivery"]
    assert delivery["delivered"] == report["ok"] * 2, delivery
    assert (delivery["failed"], delivery["unfinished"]) == (0, 0), delivery
    # The sends alone span the 2 s of the run (50 a second, on a schedule), so the
    # first accept and the last delivery are over a second apart even at whole-second
    # timestamps: the rate is always measured, and it is the delivered over that span,
    # which is no longer than the run and the 30 s allowed for delivery.
    assert delivery["delivered_per_s"] is not None, delivery
    span_s = delivery["delivered"] / delivery["delivered_per_s"]
    assert 1.0 <= span_s <= 2 + 30 + 5, delivery
    counted = delivery["latency_ms"]["express"]["count"] + delivery["latency_ms"]["normal"]["count"]
    assert counted == delivery["delivered"]

    accounts = ledger(gateway.query)
    assert set(accounts) == set(range(1, USERS + 1))
    charges = 0
    for user, (balance, transactions) in accounts.items():
        amounts = defaultdict(int)
        for _, kind, amount in transactions:
            amounts[kind] += amount
        assert amounts["topup"] == BALANCE, (user, transactions)
        assert amounts["refund"] == 0, (user, transactions)  # every recipient was delivered
        assert balance == BALANCE + amounts["charge"] == sum(amounts.values()), user
        charges += sum(1 for _, kind, _ in transactions if kind == "charge")
    assert charges == report["ok"]
    with gateway.client() as client:  # the API agrees with the ledger
        assert client.get("/balance", params={"user_id": 1}).json()["balance"] == accounts[1][0]


def test_seed_on_mariadb_adds_a_ledger_row_and_the_balance_each_time() -> None:
    with mariadb_database("lt_seed") as url:
        env = {**os.environ, "SMSGW_DATABASE_URL": url, "SMSGW_LOG_LEVEL": "WARNING"}
        for _ in range(2):
            result = smsgw(["seed", "--users", "30", "--balance", "500", "--first-user", "7"],
                           env)
            assert result.returncode == 0, result.stderr
            assert result.stdout.splitlines()[-1].startswith(
                "seeded 30 users (7..36) with 500 units each in ")

        parts = urlsplit(url)
        conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                               user=parts.username or "root", database=parts.path.strip("/"))
        try:
            def query(sql: str) -> list[tuple[Any, ...]]:
                with conn.cursor() as cursor:
                    cursor.execute(sql)
                    return [tuple(row) for row in cursor.fetchall()]

            accounts = ledger(query)
        finally:
            conn.close()

    assert set(accounts) == set(range(7, 37))
    for user, (balance, transactions) in accounts.items():
        assert balance == 1000 == sum(amount for _, _, amount in transactions)
        assert [kind for _, kind, _ in transactions] == ["topup", "topup"]
        ids = {tx_id for tx_id, _, _ in transactions}
        assert len(ids) == 2 and all(i.startswith(f"topup:{user}:seed-") for i in ids), ids


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--hot-share", "2"], "--hot-share"),
        (["--rps", "-1"], "--rps"),
        (["--recipients", "0"], "--recipients"),
        (["--url", "ftp://x"], "--url"),
    ],
)
def test_bad_loadtest_option_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert main(["loadtest", *args]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("smsgw loadtest: ") and expected in lines[0]


def test_bad_seed_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "SMSGW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    result = smsgw(["seed", "--users", "0", "--balance", "5"], env, timeout=30)
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == ["smsgw seed: --users must be >= 1"]
    assert not (tmp_path / "x.db").exists()


def test_loadtest_with_no_server_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    assert main(["loadtest", "--url", f"http://127.0.0.1:{port}", "--duration", "1"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"smsgw loadtest: cannot connect to http://127.0.0.1:{port}"), lines
