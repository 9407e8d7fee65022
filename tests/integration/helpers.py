"""Shared steps for the integration tests: send, read the ledger, wait on the database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.harness import Gateway, wait_until

SMSGW_COMMAND = Path(sys.executable).with_name("smsgw")

TERMINAL = ("DONE", "FAILED")


def send(gateway: Gateway, user_id: int, recipients: list[str], text: str = "hello",
         sms_type: str = "normal") -> dict[str, Any]:
    """POST /sms/send and expect it accepted; return the response body."""
    with gateway.client() as client:
        response = client.post("/sms/send", json={
            "customer_id": user_id, "text": text, "recipients": recipients, "type": sms_type,
        })
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "processing"
    assert body["recipients"] == len(recipients)
    return body


def api_balance(gateway: Gateway, user_id: int) -> dict[str, Any]:
    with gateway.client() as client:
        response = client.get("/balance", params={"user_id": user_id, "limit": 1000})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["next_cursor"] is None
    return body


def db_balance(gateway: Gateway, user_id: int) -> int:
    rows = gateway.query("SELECT balance FROM user_balances WHERE user_id = ?", user_id)
    assert len(rows) == 1, rows
    return int(rows[0][0])


def transactions(gateway: Gateway, user_id: int, kind: str | None = None) -> list[tuple[str, int]]:
    """(transaction_id, amount) of the user's transactions, oldest first, of one type or all."""
    sql = "SELECT transaction_id, amount FROM user_transactions WHERE user_id = ?"
    params: list[Any] = [user_id]
    if kind is not None:
        sql += " AND transaction_type = ?"
        params.append(kind)
    return [(str(t), int(a)) for t, a in gateway.query(sql + " ORDER BY id", *params)]


def recipients_of(gateway: Gateway, user_id: int) -> dict[tuple[str, str], tuple[str, str]]:
    """(sms_identifier, recipient) -> (STATUS, provider) for every row of the user."""
    rows = gateway.query(
        "SELECT sms_identifier, recipient, status, provider FROM sms_status WHERE user_id = ?",
        user_id,
    )
    return {(s, r): (status, provider) for s, r, status, provider in rows}


def wait_db_terminal(gateway: Gateway, user_ids: list[int], timeout: float = 60) -> None:
    """Wait until every sms_status row of these users is DONE or FAILED."""
    marks = ",".join("?" for _ in user_ids)

    def settled() -> bool:
        rows = gateway.query(
            f"SELECT COUNT(*) FROM sms_status WHERE user_id IN ({marks})"
            " AND status NOT IN ('DONE', 'FAILED')", *user_ids,
        )
        return rows[0][0] == 0

    wait_until(settled, timeout=timeout, every=0.2)


def refund_id(sms_identifier: str, recipient: str) -> str:
    return f"refund:{sms_identifier}:{recipient}"


def new_key(gateway: Gateway, *owner: str) -> str:
    """A key made with `smsgw keys create OWNER…` against the gateway's database."""
    made = subprocess.run([str(SMSGW_COMMAND), "keys", "create", *owner], env=gateway.env,
                          capture_output=True, text=True, timeout=60, check=True)
    return made.stdout.strip().splitlines()[-1]


def revoke_key(gateway: Gateway, key: str) -> None:
    subprocess.run([str(SMSGW_COMMAND), "keys", "revoke", key.split("_")[1]], env=gateway.env,
                   capture_output=True, text=True, timeout=60, check=True)
