"""Idempotency-Keys are compared byte for byte over HTTP, on SQLite and on MariaDB:
`case-1` after `Case-1` is another key, for a send (sent and charged again) and
for a top-up (credited again)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.harness import GatewayFactory
from tests.integration.helpers import api_balance
from tests.mariadb import mariadb_database


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None  # the embedded gateway's own file
        return
    with mariadb_database("identifiers") as url:
        yield url


@pytest.mark.parametrize("mode", ["embedded"])  # the in-process bus: no broker needed
def test_keys_that_differ_in_case_are_different_keys(
    make_gateway: GatewayFactory, mode: str, database_url: str | None, user_id: int
) -> None:
    gateway = make_gateway(start=False)
    if database_url is not None:
        gateway.env["SMSGW_DATABASE_URL"] = database_url
    gateway.start()
    send = {"customer_id": user_id, "text": "hi", "recipients": ["+989120000001"]}
    top_up = {"user_id": user_id, "balance": 10}
    with gateway.client() as client:
        credits = [client.post("/balance/add", json=top_up, headers={"Idempotency-Key": key})
                   for key in ("Case-1", "case-1", "Case-1")]
        sends = [client.post("/sms/send", json=send, headers={"Idempotency-Key": key})
                 for key in ("Case-1", "case-1", "case-1")]
    assert [r.status_code for r in credits + sends] == [200] * 6, [r.text for r in sends]
    # the last one a replay of the first: it answers what the first answered
    assert [r.json() for r in credits] == ["done"] * 3
    assert api_balance(gateway, user_id)["balance"] == 20 - 2
    first, second, replay = (r.json()["sms_identifier"] for r in sends)
    assert first != second == replay
    ledger = api_balance(gateway, user_id)
    assert sorted(t["transaction_id"] for t in ledger["transactions"]
                  if t["TransactionType"] == "deposit") == [f"topup:{user_id}:Case-1",
                                               f"topup:{user_id}:case-1"]
    assert sum(1 for t in ledger["transactions"] if t["TransactionType"] == "withdrawal") == 2
