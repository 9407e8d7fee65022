"""The database gone under a running gateway: every route answers 503 with
Retry-After (clients retry 503, not 500), and the API serves again once the
database is back, with no restart.

The shared MariaDB is never stopped: the gateway reaches it through a TCP
forwarder of this test, which the test cuts (live connections closed, new ones
refused) and restores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.integration.forwarder import Forwarder
from tests.integration.harness import Gateway, GatewayFactory, wait_until
from tests.integration.helpers import api_balance
from tests.mariadb import mariadb_database
from tests.services import MARIADB_HOST, MARIADB_PORT


@pytest.fixture
def database_forwarder() -> Iterator[Forwarder]:
    proxy = Forwarder((MARIADB_HOST, MARIADB_PORT))
    proxy.accept()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def database_url() -> Iterator[str]:
    with mariadb_database("outage") as url:
        yield url


def _requests(user_id: int) -> dict[str, tuple[str, str, dict[str, Any]]]:
    send = {"customer_id": user_id, "text": "hi", "recipients": ["+989120000001"]}
    return {
        "send": ("POST", "/sms/send", {"json": send}),
        "keyed send": ("POST", "/sms/send", {"json": send, "headers": {"Idempotency-Key": "k"}}),
        "top-up": ("POST", "/balance/add", {"json": {"user_id": user_id, "balance": 5}}),
        "balance": ("GET", "/balance", {"params": {"user_id": user_id}}),
        "history": ("GET", "/sms/history", {"params": {"user_id": user_id}}),
    }


def _answer(gateway: Gateway, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with gateway.client() as client:
        return client.request(method, path, **kwargs)


# `smsgw serve` with the in-process bus over MariaDB: the database is another host
# to lose, and no broker is needed to watch the API.
@pytest.mark.parametrize("mode", ["embedded"])
def test_every_route_answers_503_while_the_database_is_gone_and_recovers(
    make_gateway: GatewayFactory, mode: str, database_forwarder: Forwarder, database_url: str,
    user_id: int,
) -> None:
    gateway = make_gateway(start=False)
    parts = urlsplit(database_url)
    gateway.env["SMSGW_DATABASE_URL"] = urlunsplit(
        parts._replace(netloc=f"{parts.username or 'root'}@127.0.0.1:{database_forwarder.port}")
    )
    gateway.start()
    gateway.top_up(user_id, 100)

    database_forwarder.close()  # every pooled connection dies; new ones are refused
    for name, (method, path, kwargs) in _requests(user_id).items():
        response = _answer(gateway, method, path, **kwargs)
        assert response.status_code == 503, (name, response.status_code, response.text)
        assert response.headers["Retry-After"] == "2", name
        body = response.json()
        assert list(body) == ["message"], name
        assert "database" in body["message"], name
        assert "127.0.0.1" not in body["message"]  # the driver's words stay in the log

    database_forwarder.accept()
    send, *_ = _requests(user_id).values()
    recovered = wait_until(
        lambda: (r := _answer(gateway, send[0], send[1], **send[2])).status_code == 200 and r,
        timeout=30, every=0.2,
    )
    assert recovered.json()["cost"] == 1
    ledger = api_balance(gateway, user_id)
    # Nothing the outage refused was applied behind the client's back.
    assert ledger["balance"] == sum(t["Amount"] for t in ledger["transactions"])
    assert ledger["balance"] == 99
