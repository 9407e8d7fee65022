"""Tenancy over real HTTP: every /v1 route with every kind of key answers as it must.

The matrix: each route by {no key, a malformed one, a revoked one, another
customer's, a customer's on an admin route, an admin key, the customer's own}.
A customer's routes act for the key's customer only: another customer's key
never sees, charges or finds this customer's things.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.harness import Gateway, GatewayFactory, wait_until
from tests.integration.helpers import SMSGW_COMMAND, new_key, revoke_key

pytestmark = pytest.mark.slow

SEND = {"text": "hi", "recipients": ["09121234567"]}


def bearer(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


def call(c: httpx.Client, route: str, key: str | None, **kwargs: Any) -> httpx.Response:
    method, path = route.split(" ", 1)
    return c.request(method, path, headers=bearer(key), **kwargs)


def test_every_route_with_every_kind_of_key(shared_gateway: Gateway, user_id: int) -> None:
    me, other = user_id, user_id + 500_000
    own, theirs = new_key(shared_gateway, "--customer", str(me)), new_key(
        shared_gateway, "--customer", str(other))
    admin = new_key(shared_gateway, "--admin")
    revoked = new_key(shared_gateway, "--customer", str(me))
    revoke_key(shared_gateway, revoked)  # never used: no process holds it in memory
    malformed = own[:-1]
    shared_gateway.top_up(me, 100)
    shared_gateway.top_up(other, 100)
    with shared_gateway.client() as c:
        sent = call(c, "POST /v1/messages", own, json=SEND)
        assert sent.status_code == 202, sent.text
        mine = sent.json()["id"]
        spare = call(c, f"POST /v1/customers/{me}/keys", admin, json={"name": "spare"})
        assert spare.status_code == 201, spare.text

        customer_routes: dict[str, dict[str, Any]] = {
            "POST /v1/messages": {"json": SEND},
            f"GET /v1/messages/{mine}": {},
            "GET /v1/messages": {},
            "GET /v1/balance": {},
        }
        admin_routes: dict[str, dict[str, Any]] = {
            "POST /v1/customers": {"json": {"name": "n"}},
            f"GET /v1/customers/{me}": {},
            f"PATCH /v1/customers/{me}": {"json": {"max_recipients_per_s": None}},
            f"POST /v1/customers/{me}/topups": {"json": {"amount": 1}},
            f"POST /v1/customers/{me}/keys": {"json": {"name": "k"}},
            f"DELETE /v1/keys/{spare.json()['key_id']}": {},
        }
        for route, kwargs in {**customer_routes, **admin_routes}.items():
            for key in (None, malformed, revoked, "smsgw_" + "0" * 16 + "_" + "A" * 43):
                refused = call(c, route, key, **kwargs)
                assert refused.status_code == 401, (route, key, refused.text)
                assert refused.headers["www-authenticate"] == "Bearer"
                assert list(refused.json()) == ["message"]
        for route, kwargs in customer_routes.items():
            assert call(c, route, admin, **kwargs).status_code == 403, route
        for route, kwargs in admin_routes.items():
            for key in (own, theirs):
                forbidden = call(c, route, key, **kwargs)
                assert forbidden.status_code == 403, (route, forbidden.text)

        # Another customer's key finds none of mine, and acts for its own customer.
        assert call(c, f"GET /v1/messages/{mine}", theirs).status_code == 404
        assert call(c, "POST /v1/messages", theirs, json=SEND).status_code == 202
        listed = call(c, "GET /v1/messages", theirs).json()["items"]
        assert listed and all(row["id"] != mine for row in listed)
        their_balance = call(c, "GET /v1/balance", theirs).json()["balance"]
        assert their_balance == 99

        # The customer's own key and the admin key: served.
        served = {route: call(c, route, own, **kwargs).status_code
                  for route, kwargs in customer_routes.items()}
        assert served == {"POST /v1/messages": 202, f"GET /v1/messages/{mine}": 200,
                          "GET /v1/messages": 200, "GET /v1/balance": 200}
        administered = {route: call(c, route, admin, **kwargs).status_code
                        for route, kwargs in admin_routes.items()}
        assert list(administered.values()) == [201, 200, 200, 200, 201, 204], administered
        # Two sends of 1 and a top-up of 1: what the refusals wrote was nothing.
        assert call(c, "GET /v1/balance", own).json()["balance"] == 100 - 2 + 1


@pytest.mark.parametrize("mode", ["split"])
def test_a_revocation_reaches_every_api_process_within_2_s(
    make_gateway: GatewayFactory, mode: str, tmp_path: Path
) -> None:
    """Two `smsgw api` processes on one MariaDB, each holding the key in memory."""
    first = make_gateway()
    (tmp_path / "second").mkdir()
    second = Gateway("split", first.env, tmp_path / "second").start("api")
    try:
        key = new_key(first, "--customer", "77")
        urls = (first.url, second.url)
        with httpx.Client(timeout=5) as c:
            for url in urls:  # each process has now read the key and keeps it
                assert c.get(f"{url}/v1/balance", headers=bearer(key)).status_code == 200
            revoke_key(first, key)
            revoked_at = time.monotonic()
            seen: dict[str, float] = {}
            while len(seen) < len(urls) and time.monotonic() - revoked_at < 10:
                for url in urls:
                    if url not in seen and c.get(f"{url}/v1/balance",
                                                 headers=bearer(key)).status_code == 401:
                        seen[url] = time.monotonic() - revoked_at
                time.sleep(0.02)
        assert set(seen) == set(urls), seen
        assert max(seen.values()) <= 2.0, seen
    finally:
        second.stop()


@pytest.mark.parametrize("mode", ["serve"])
def test_with_legacy_auth_key_the_seed_routes_take_the_customers_own_key(
    make_gateway: GatewayFactory, mode: str
) -> None:
    gateway = make_gateway(SMSGW_LEGACY_AUTH="key")
    me, other = 61, 62
    own, admin = new_key(gateway, "--customer", str(me)), new_key(gateway, "--admin")
    theirs, revoked = new_key(gateway, "--customer", str(other)), new_key(gateway, "--admin")
    revoke_key(gateway, revoked)
    send = {"customer_id": me, "text": "hi", "recipients": ["09121234567"]}
    with gateway.client() as c:
        def answer(route: str, key: str | None, **kwargs: Any) -> int:
            return call(c, route, key, **kwargs).status_code

        top_up = {"json": {"user_id": me, "balance": 10}}
        for key in (None, own[:-2], revoked):
            assert answer("POST /balance/add", key, **top_up) == 401
        assert answer("POST /balance/add", own, **top_up) == 403
        assert answer("POST /balance/add", theirs, **top_up) == 403
        assert answer("POST /balance/add", admin, **top_up) == 200
        for route, kwargs in {"POST /sms/send": {"json": send},
                              "GET /sms/history": {"params": {"user_id": me}},
                              "GET /balance": {"params": {"user_id": me}}}.items():
            for key in (None, own[:-2], revoked):
                refused = call(c, route, key, **kwargs)
                assert refused.status_code == 401, (route, key, refused.text)
                assert refused.headers["www-authenticate"] == "Bearer"
            assert answer(route, admin, **kwargs) == 403, route
            assert answer(route, theirs, **kwargs) == 403, route  # names me, not them
            assert answer(route, own, **kwargs) == 200, route
        someone_else = {"json": {**send, "customer_id": other}}
        assert answer("POST /sms/send", own, **someone_else) == 403
        assert answer("GET /balance", own, params={"user_id": other}) == 403
        assert answer("GET /sms/history", own, params={"user_id": other}) == 403
        balance = call(c, "GET /balance", own, params={"user_id": me}).json()["balance"]
    assert balance == 9  # one send went through; the refused ones wrote nothing
    assert "SMSGW_LEGACY_AUTH=none" not in gateway.logs()


@pytest.mark.parametrize("mode", ["serve"])
def test_open_seed_routes_are_said_once_at_start(make_gateway: GatewayFactory,
                                                 mode: str) -> None:
    gateway = make_gateway()
    warnings = [line for line in gateway.logs().splitlines()
                if "SMSGW_LEGACY_AUTH=none" in line]
    assert len(warnings) == 1 and '"WARNING"' in warnings[0], warnings


@pytest.mark.parametrize("mode", ["serve"])
def test_keys_list_shows_when_a_key_was_last_used(make_gateway: GatewayFactory,
                                                 mode: str) -> None:
    gateway = make_gateway()
    used, unused = new_key(gateway, "--customer", "63"), new_key(gateway, "--customer", "63")
    with gateway.client() as c:
        assert call(c, "GET /v1/balance", used).status_code == 200

    def last_used() -> dict[str, str]:
        listed = subprocess.run([str(SMSGW_COMMAND), "keys", "list", "--customer", "63"],
                                env=gateway.env, capture_output=True, text=True, timeout=60,
                                check=True).stdout.splitlines()
        header = listed[0].split("\t")
        rows = [dict(zip(header, line.split("\t"), strict=True)) for line in listed[1:]]
        return {row["key_id"]: row["last_used"] for row in rows}

    # Written every 5 s by the API's process, not once per request.
    seen = wait_until(lambda: (u := last_used())[used.split("_")[1]] != "-" and u, timeout=15)
    assert seen[unused.split("_")[1]] == "-"
    assert datetime.fromisoformat(seen[used.split("_")[1]]) > datetime.now(UTC) - timedelta(
        minutes=1)
