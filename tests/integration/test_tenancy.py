"""Tenancy over real HTTP: every /v1 route with every kind of key answers as it must.

The matrix: each route by {no key, a malformed one, a revoked one, another
customer's, a customer's on an admin route, an admin key, the customer's own}.
A customer's routes act for the key's customer only: another customer's key
never sees, charges or finds this customer's things.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.harness import Gateway, GatewayFactory
from tests.integration.helpers import new_key, revoke_key

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
