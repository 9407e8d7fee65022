"""GET /sms/history, GET /balance and POST /balance/add over real HTTP."""

from __future__ import annotations

import pytest

from tests.integration.harness import Gateway


def send(gw: Gateway, user_id: int, recipients: list[str], type_: str = "normal") -> str:
    with gw.client() as c:
        r = c.post("/sms/send", json={"customer_id": user_id, "text": "hello",
                                      "recipients": recipients, "type": type_})
    assert r.status_code == 200, r.text
    return str(r.json()["sms_identifier"])


def test_history_rows_newest_first_with_filters(shared_gateway: Gateway, user_id: int) -> None:
    shared_gateway.top_up(user_id, 100)
    first = send(shared_gateway, user_id, ["09120000001", "09120000002"])
    second = send(shared_gateway, user_id, ["09120000003"], "express")
    shared_gateway.wait_terminal(first, user_id)
    shared_gateway.wait_terminal(second, user_id)
    with shared_gateway.client() as c:
        rows = c.get("/sms/history", params={"user_id": user_id}).json()
        only_second = c.get("/sms/history", params={"user_id": user_id,
                                                    "sms_identifier": second}).json()
        done = c.get("/sms/history", params={"user_id": user_id, "status": "done"}).json()
        pending = c.get("/sms/history", params={"user_id": user_id, "status": "pending"}).json()
    assert [r["recipient"] for r in rows["items"]] == ["09120000003", "09120000002", "09120000001"]
    assert rows["next_cursor"] is None
    row = rows["items"][0]
    assert set(row) == {"user_id", "sms_identifier", "recipient", "type", "status", "provider",
                        "created_at", "updated_at"}
    assert (row["user_id"], row["sms_identifier"], row["type"]) == (user_id, second, "express")
    assert (row["status"], row["provider"]) == ("done", "A")
    assert [r["recipient"] for r in only_second["items"]] == ["09120000003"]
    assert len(done["items"]) == 3
    assert pending["items"] == []


def test_history_pages_with_a_cursor(shared_gateway: Gateway, user_id: int) -> None:
    shared_gateway.top_up(user_id, 100)
    send(shared_gateway, user_id, [f"0912000{i:04d}" for i in range(5)])
    seen: list[str] = []
    cursor = None
    with shared_gateway.client() as c:
        for _ in range(3):
            params: dict[str, object] = {"user_id": user_id, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/sms/history", params=params).json()
            seen += [r["recipient"] for r in page["items"]]
            cursor = page["next_cursor"]
    assert seen == [f"0912000{i:04d}" for i in reversed(range(5))]
    assert cursor is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "user_id"),
        ({"user_id": "abc"}, "user_id"),
        ({"user_id": 0}, "user_id"),
        ({"user_id": 1, "status": "delivered"}, "status"),
        ({"user_id": 1, "limit": 0}, "limit"),
        ({"user_id": 1, "limit": 1001}, "limit"),
        ({"user_id": 1, "cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_history_bad_query_is_422_naming_the_field(
    shared_gateway: Gateway, params: dict[str, object], field: str
) -> None:
    with shared_gateway.client() as c:
        r = c.get("/sms/history", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith(f"{field}:"), r.json()


def test_status_filter_is_case_insensitive(shared_gateway: Gateway, user_id: int) -> None:
    shared_gateway.top_up(user_id, 10)
    sms = send(shared_gateway, user_id, ["09120000009"])
    shared_gateway.wait_terminal(sms, user_id)
    with shared_gateway.client() as c:
        for status in ("done", "DONE", "Done"):
            rows = c.get("/sms/history", params={"user_id": user_id, "status": status}).json()
            assert len(rows["items"]) == 1


def test_top_up_creates_the_account_and_returns_the_new_balance(
    shared_gateway: Gateway, user_id: int
) -> None:
    with shared_gateway.client() as c:
        missing = c.get("/balance", params={"user_id": user_id})
        first = c.post("/balance/add", json={"user_id": user_id, "balance": 100,
                                             "description": "top-up"})
        second = c.post("/balance/add", json={"user_id": user_id, "balance": 50})
        view = c.get("/balance", params={"user_id": user_id}).json()
    assert missing.status_code == 404
    assert str(user_id) in missing.json()["message"]
    assert first.status_code == 200 and first.json() == {"user_id": user_id, "balance": 100}
    assert second.json()["balance"] == 150
    assert view["balance"] == 150
    assert [(t["amount"], t["type"]) for t in view["transactions"]] == [(50, "topup"),
                                                                         (100, "topup")]
    assert view["transactions"][1]["description"] == "top-up"


def test_balance_lists_charges_newest_first_and_pages(
    shared_gateway: Gateway, user_id: int
) -> None:
    shared_gateway.top_up(user_id, 10)
    sms = send(shared_gateway, user_id, ["09120000001", "09120000002"], "express")
    with shared_gateway.client() as c:
        page1 = c.get("/balance", params={"user_id": user_id, "limit": 1}).json()
        page2 = c.get("/balance", params={"user_id": user_id, "limit": 1,
                                          "cursor": page1["next_cursor"]}).json()
    assert page1["balance"] == 4
    charge = page1["transactions"][0]
    assert (charge["amount"], charge["type"], charge["transaction_id"]) == (
        -6, "charge", f"charge:{sms}")
    assert [t["type"] for t in page2["transactions"]] == ["topup"]
    assert page2["next_cursor"] is None


def test_top_up_with_an_idempotency_key_applies_once(
    shared_gateway: Gateway, user_id: int
) -> None:
    with shared_gateway.client() as c:
        for _ in range(3):
            r = c.post("/balance/add", json={"user_id": user_id, "balance": 70},
                       headers={"Idempotency-Key": "invoice-17"})
            assert r.status_code == 200 and r.json()["balance"] == 70


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": 1, "balance": 0}, "balance"),
        ({"user_id": 1, "balance": -5}, "balance"),
        ({"user_id": 1, "balance": 1.5}, "balance"),
        ({"user_id": 1, "balance": "ten"}, "balance"),
        ({"user_id": 1}, "balance"),
        ({"balance": 10}, "user_id"),
        ({"user_id": 0, "balance": 10}, "user_id"),
        ({"user_id": 1, "balance": 10, "description": "x" * 256}, "description"),
    ],
)
def test_bad_top_up_is_422_and_writes_nothing(
    shared_gateway: Gateway, body: dict[str, object], field: str
) -> None:
    before = shared_gateway.query("SELECT COUNT(*) FROM user_transactions")[0][0]
    with shared_gateway.client() as c:
        r = c.post("/balance/add", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith(f"{field}:"), r.json()
    assert shared_gateway.query("SELECT COUNT(*) FROM user_transactions")[0][0] == before
