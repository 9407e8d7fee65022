"""The Go service's own clients, sent as they send, get the Go service's answers.

Its Postman collection (four requests, user 1, hard-coded bodies) and a short
load in the shape of its load test (users seeded through /balance/add, then
one-recipient sends at a fixed rate, counting 2xx); the answers' statuses,
keys and values are those ../shared/reference/go-api.md records.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from tests.integration.conftest import gateway_env
from tests.integration.harness import MODES, Gateway, wait_until

pytestmark = pytest.mark.slow

# Numbers starting 0999 are refused by both operators: the refund shows as "Corrective".
OPERATORS = "A=sim://?reject_prefix=0999,B=sim://?reject_prefix=0999"
JSON = {"Content-Type": "application/json"}  # what the collection sends on every POST
GO_HISTORY_KEYS = {"user_id", "type", "status", "recipient", "provider", "sms_identifier",
                   "created_at", "updated_at"}
GO_TRANSACTION_KEYS = {"Amount", "TransactionType", "Description", "transaction_id"}


@pytest.fixture(scope="module", params=MODES)
def go_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with ExitStack() as stack:
        workdir = tmp_path_factory.mktemp("go")
        mode = str(request.param)
        env = gateway_env(mode, workdir, stack, SMSGW_OPERATORS=OPERATORS)
        gateway = Gateway(mode, env, workdir).start()
        try:
            yield gateway
        finally:
            gateway.stop()


def test_the_postman_collection_gets_the_go_answers(go_gateway: Gateway) -> None:
    with go_gateway.client() as c:
        # 1. Add balance
        added = c.post("/balance/add", headers=JSON,
                       content=b'{"user_id":1,"balance":100,"description":"top-up"}')
        # 2. Get balance
        balance = c.get("/balance?user_id=1")
        # 3. SMS history, with a status the service never writes
        history = c.get(f"/sms/history?user_id=1&status=init&sms_identifier={uuid.uuid4()}")
        # 4. Send SMS, the README's example
        sent = c.post("/sms/send", headers=JSON, content=b"""{
            "customer_id": 1,
            "text": "hi",
            "recipients": [
                "09128582812",
                "091285284834"
            ],
            "type": "normal"
        }""")

    assert (added.status_code, added.headers["content-type"]) == (200, "application/json")
    assert added.json() == "done"

    assert balance.status_code == 200
    assert set(balance.json()) == {"balance", "transactions", "next_cursor"}
    assert balance.json()["balance"] == 100
    [deposit] = balance.json()["transactions"]
    assert set(deposit) == GO_TRANSACTION_KEYS
    assert (deposit["Amount"], deposit["TransactionType"], deposit["Description"]) == (
        100, "deposit", "top-up")
    assert deposit["transaction_id"]

    assert history.status_code == 200
    assert history.json() == {"history": [], "next_cursor": None}

    assert sent.status_code == 200
    body = sent.json()
    assert body["status"] == "processing"
    assert uuid.UUID(body["sms_identifier"])
    # Extra keys inside the object only, as the compatibility promise allows.
    assert set(body) == {"status", "sms_identifier", "segments", "cost", "recipients"}

    rows = go_gateway.wait_terminal(body["sms_identifier"], 1)
    assert len(rows) == 2 and all(set(r) == GO_HISTORY_KEYS for r in rows)
    assert {r["status"] for r in rows} == {"done"}
    with go_gateway.client() as c:
        done = c.get(f"/sms/history?user_id=1&status=done&sms_identifier={body['sms_identifier']}")
        after = c.get("/balance?user_id=1").json()
    assert sorted(r["recipient"] for r in done.json()["history"]) == ["091285284834",
                                                                      "09128582812"]
    assert after["balance"] == 98
    assert [(t["Amount"], t["TransactionType"]) for t in after["transactions"]] == [
        (-2, "withdrawal"), (100, "deposit")]  # newest first


def test_a_refund_is_corrective_and_an_unknown_user_has_nothing(go_gateway: Gateway) -> None:
    with go_gateway.client() as c:
        assert c.post("/balance/add", headers=JSON,
                      json={"user_id": 2, "balance": 10, "description": "top-up"}).json() == "done"
        sent = c.post("/sms/send", headers=JSON, json={
            "customer_id": 2, "text": "hi", "recipients": ["09990000001"], "type": "express"})
        assert sent.status_code == 200, sent.text
        [row] = go_gateway.wait_terminal(sent.json()["sms_identifier"], 2)
        assert row["status"] == "failed"

        def refunded() -> dict[str, Any] | None:
            answer: dict[str, Any] = c.get("/balance?user_id=2").json()
            return answer if answer["balance"] == 10 else None

        ledger = wait_until(refunded)
        unknown = c.get("/balance?user_id=777")
    assert [(t["Amount"], t["TransactionType"]) for t in ledger["transactions"]] == [
        (3, "Corrective"), (-3, "withdrawal"), (10, "deposit")]
    assert (unknown.status_code, unknown.json()) == (
        200, {"balance": 0, "transactions": [], "next_cursor": None})


@pytest.mark.parametrize(("path", "missing"), [
    ("/balance", ""), ("/balance?user_id=", ""),
    ("/sms/history", ""), ("/sms/history?user_id=", "&status=done"),
])
def test_a_missing_user_id_is_400_as_the_go_service(
    go_gateway: Gateway, path: str, missing: str
) -> None:
    with go_gateway.client() as c:
        r = c.get(path + missing)
    assert r.status_code == 400
    assert r.json() == {"message": "user_id: is required"}


def test_what_the_go_service_refuses_is_a_400_or_402(go_gateway: Gateway) -> None:
    with go_gateway.client() as c:
        bad_json = c.post("/sms/send", headers=JSON, content=b'{"customer_id": "1"}')
        zero = c.post("/sms/send", headers=JSON,
                      json={"customer_id": 1, "text": "hi", "recipients": []})
        unknown = c.post("/sms/send", headers=JSON,
                         json={"customer_id": 9_999_999, "text": "hi",
                               "recipients": ["09128582812"]})
        fraction = c.post("/balance/add", headers=JSON,
                          json={"user_id": 1, "balance": 1.5, "description": ""})
        negative = c.post("/balance/add", headers=JSON,
                          json={"user_id": 1, "balance": -5, "description": ""})
    for answer, field in ((bad_json, "customer_id"), (zero, "recipients"),
                          (fraction, "balance"), (negative, "balance")):
        assert answer.status_code == 400, answer.text
        assert answer.json()["message"].startswith(f"{field}:"), answer.json()
    assert unknown.status_code == 402
    assert set(unknown.json()) == {"message"}


# The Go load test's shape: seed users through /balance/add, then one-recipient
# sends (+98912%06d, a fifth of them express) at a fixed rate, counting 2xx.
USERS, RATE, SECONDS = 20, 100, 2


async def _go_load(url: str) -> tuple[list[httpx.Response], float]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        for user in range(100, 100 + USERS):
            r = await c.post("/balance/add", headers=JSON, json={
                "user_id": user, "balance": 100_000, "description": "loadtest seed"})
            assert (r.status_code, r.json()) == (200, "done")
        sends: list[asyncio.Task[httpx.Response]] = []
        start = time.monotonic()
        for i in range(RATE * SECONDS):
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            sends.append(asyncio.create_task(c.post("/sms/send", headers=JSON, json={
                "customer_id": 100 + i % USERS, "text": "load test",
                "recipients": [f"+98912{i:06d}"],
                "type": "express" if i % 5 == 0 else "normal",
            })))
        answers = await asyncio.gather(*sends)
        return answers, time.monotonic() - start


def test_a_load_in_the_shape_of_the_go_load_test(go_gateway: Gateway) -> None:
    answers, _ = asyncio.run(_go_load(go_gateway.url))
    assert [a.status_code for a in answers] == [200] * (RATE * SECONDS)
    assert all(a.json()["status"] == "processing" for a in answers)
    assert len({a.json()["sms_identifier"] for a in answers}) == RATE * SECONDS
    with go_gateway.client() as c:
        seeded = [c.get(f"/balance?user_id={u}").json() for u in range(100, 100 + USERS)]
    # Each user paid 1 per normal and 3 per express send, and nothing else.
    express = [i for i in range(RATE * SECONDS) if i % 5 == 0]
    for k, answer in enumerate(seeded):
        mine = [i for i in range(RATE * SECONDS) if i % USERS == k]
        cost = sum(3 if i in express else 1 for i in mine)
        assert answer["balance"] == 100_000 - cost
        assert len(answer["transactions"]) == 1 + len(mine)
