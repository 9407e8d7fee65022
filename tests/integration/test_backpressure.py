"""Backpressure over real HTTP: past SMSGW_MAX_BACKLOG due events, a send is 503 and
writes nothing; once the relay drains the outbox, sends are accepted again.

Split mode, deterministically: only `smsgw api` runs at first, so every accepted
SMS stays due in the outbox (no relay publishes it).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.harness import Gateway, GatewayFactory, wait_until
from tests.integration.helpers import send


@pytest.fixture
def mode() -> str:
    return "split"


def snapshot(gateway: Gateway, user_id: int) -> tuple[Any, ...]:
    """Every row count a send could change, and the customer's balance."""
    return gateway.query(
        "SELECT (SELECT COUNT(*) FROM sms_status), (SELECT COUNT(*) FROM outbox_events),"
        " (SELECT COUNT(*) FROM user_transactions), (SELECT COUNT(*) FROM idempotency_keys),"
        " (SELECT balance FROM user_balances WHERE user_id = ?)", user_id,
    )[0]


def post_send(gateway: Gateway, user_id: int, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    with gateway.client() as client:
        return client.post("/sms/send", headers=headers, json={
            "customer_id": user_id, "text": "hi", "recipients": ["09120000001"],
        })


def test_over_the_limit_sends_are_refused_with_retry_after_until_the_backlog_drains(
    make_gateway: GatewayFactory, user_id: int
) -> None:
    gateway = make_gateway(start=False, SMSGW_MAX_BACKLOG="1", SMSGW_METRICS_PORT="0")
    gateway.start("api")
    gateway.top_up(user_id, 100)
    send(gateway, user_id, ["09120000001"])
    send(gateway, user_id, ["09120000002"])  # 2 due events: over the limit of 1

    # The API reads the backlog in the background (every second): it closes soon.
    attempts = iter(range(1000))

    def refused() -> tuple[httpx.Response, str, tuple[Any, ...], tuple[Any, ...]] | None:
        key = f"attempt-{next(attempts)}"
        before = snapshot(gateway, user_id)
        response = post_send(gateway, user_id, key=key)
        if response.status_code == 200:
            return None
        return response, key, before, snapshot(gateway, user_id)

    response, key, before, after = wait_until(refused, timeout=15, every=0.2)
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    message = response.json()["message"]
    assert message.startswith("overloaded: ") and "(limit 1)" in message
    assert response.json() == {"message": message}
    assert after == before  # nothing written: no rows, no charge, no idempotency key

    # The relay and the workers drain the outbox; the gate reopens by itself.
    gateway.start("relay", "worker")
    accepted = wait_until(lambda: (r := post_send(gateway, user_id)).status_code == 200 and r,
                          timeout=30, every=0.5)
    assert accepted.json()["status"] == "processing"
    # the refused key was never stored: reusing it is a first send, not a replay
    rows = snapshot(gateway, user_id)
    assert post_send(gateway, user_id, key=key).status_code == 200
    assert snapshot(gateway, user_id)[3] == rows[3] + 1  # the key is stored now
