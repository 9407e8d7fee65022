"""Per-customer send limits over real HTTP: over its rate a customer is refused 429
with Retry-After and nothing is written; every other customer is served as before."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import Gateway, GatewayFactory
from tests.integration.helpers import new_key

pytestmark = pytest.mark.slow

RATE = "5/s,burst=10"


def numbers(n: int) -> list[str]:
    return [f"0912{i:07d}" for i in range(n)]


def written(gateway: Gateway, customer: int) -> tuple[int, int]:
    """The customer's recipients recorded and its ledger rows."""
    recipients = gateway.query("SELECT COUNT(*) FROM sms_status WHERE user_id = ?", customer)
    ledger = gateway.query("SELECT COUNT(*) FROM user_transactions WHERE user_id = ?", customer)
    return int(recipients[0][0]), int(ledger[0][0])


def test_over_its_limit_a_customer_is_refused_429_and_the_others_are_served(
    make_gateway: GatewayFactory, mode: str
) -> None:
    gateway = make_gateway(SMSGW_CUSTOMER_RATE=RATE)
    heavy, light = 71, 72
    admin = new_key(gateway, "--admin")
    heavy_key = new_key(gateway, "--customer", str(heavy))
    for customer in (heavy, light):
        gateway.top_up(customer, 10_000)
    with gateway.client() as c:
        keyed = {"Authorization": f"Bearer {heavy_key}"}
        first = c.post("/v1/messages", headers=keyed,
                       json={"text": "hi", "recipients": numbers(10)})
        assert first.status_code == 202, first.text  # the whole burst
        before = written(gateway, heavy)
        refused = c.post("/v1/messages", headers=keyed,
                         json={"text": "hi", "recipients": numbers(3)})
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        assert refused.json() == {"message": (
            f"customer {heavy} is over its send limit (5 recipients/s, burst 10); "
            f"retry in {refused.headers['retry-after']} s")}
        # The seed route counts against the same limit.
        seed = c.post("/sms/send", json={"customer_id": heavy, "text": "hi",
                                         "recipients": numbers(3)})
        assert seed.status_code == 429, seed.text
        assert written(gateway, heavy) == before  # nothing charged, nothing recorded

        # The heavy customer keeps pushing; the light one, in the same run, at its
        # own pace under its limit, is never refused.
        light_answers, heavy_answers = [], []
        for n in range(8):
            heavy_answers.append(c.post("/sms/send", json={
                "customer_id": heavy, "text": "more", "recipients": numbers(5)}).status_code)
            light_answers.append(c.post("/sms/send", json={
                "customer_id": light, "text": f"light {n}", "recipients": numbers(1),
            }).status_code)
        assert light_answers == [200] * 8
        assert heavy_answers.count(429) >= 5, heavy_answers

        # A customer's own limit, set by an admin, holds within a second or so.
        patched = c.patch(f"/v1/customers/{heavy}", json={"max_recipients_per_s": 10_000},
                          headers={"Authorization": f"Bearer {admin}"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["max_recipients_per_s"] == 10_000
        started = time.monotonic()
        while c.post("/v1/messages", headers=keyed, json={
                "text": "hi", "recipients": numbers(1000)}).status_code == 429:
            assert time.monotonic() - started < 3
            time.sleep(0.05)


@pytest.mark.parametrize("mode", ["split"])
def test_with_two_api_processes_a_customer_gets_at_most_twice_its_rate(
    make_gateway: GatewayFactory, mode: str, tmp_path: Path
) -> None:
    """What docs/api.md says: each `smsgw api` process has its own buckets."""
    first = make_gateway(SMSGW_CUSTOMER_RATE="10/s,burst=10")
    (tmp_path / "second").mkdir()
    second = Gateway("split", first.env, tmp_path / "second").start("api")
    try:
        customer = 81
        first.top_up(customer, 100_000)
        accepted = {first.url: 0, second.url: 0}
        started = time.monotonic()
        with httpx.Client(timeout=5) as c:
            while time.monotonic() - started < 2.0:
                for url in accepted:
                    answer = c.post(f"{url}/sms/send", json={
                        "customer_id": customer, "text": "hi", "recipients": numbers(1)})
                    assert answer.status_code in (200, 429), answer.text
                    accepted[url] += answer.status_code == 200
        elapsed = time.monotonic() - started
        # Each process: at most its burst (10) and its rate over the time (10/s) ...
        for url, count in accepted.items():
            assert count <= 10 + 10 * elapsed + 1, (url, accepted, elapsed)
            assert count >= 10, (url, accepted)  # ... and at least its own burst
        assert written(first, customer)[0] == sum(accepted.values())
    finally:
        second.stop()
