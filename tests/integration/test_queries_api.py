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
    assert [r["recipient"] for r in rows["history"]] == [
        "09120000003", "09120000002", "09120000001"]
    assert rows["next_cursor"] is None
    row = rows["history"][0]
    assert set(row) == {"user_id", "sms_identifier", "recipient", "type", "status", "provider",
                        "created_at", "updated_at"}
    assert (row["user_id"], row["sms_identifier"], row["type"]) == (user_id, second, "express")
    assert (row["status"], row["provider"]) == ("done", "A")
    assert [r["recipient"] for r in only_second["history"]] == ["09120000003"]
    assert len(done["history"]) == 3
    assert pending["history"] == []


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
            seen += [r["recipient"] for r in page["history"]]
            cursor = page["next_cursor"]
    assert seen == [f"0912000{i:04d}" for i in reversed(range(5))]
    assert cursor is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "user_id"),
        ({"user_id": "abc"}, "user_id"),
        ({"user_id": 0}, "user_id"),
        ({"user_id": 1, "limit": 0}, "limit"),
        ({"user_id": 1, "limit": 1001}, "limit"),
        ({"user_id": 1, "cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_history_bad_query_is_400_naming_the_field(
    shared_gateway: Gateway, params: dict[str, object], field: str
) -> None:
    with shared_gateway.client() as c:
        r = c.get("/sms/history", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(f"{field}:"), r.json()


def test_status_matches_exactly_as_the_go_service(shared_gateway: Gateway, user_id: int) -> None:
    shared_gateway.top_up(user_id, 10)
    sms = send(shared_gateway, user_id, ["09120000009"])
    shared_gateway.wait_terminal(sms, user_id)
    with shared_gateway.client() as c:
        found = {status: c.get("/sms/history", params={"user_id": user_id, "status": status})
                 for status in ("done", "DONE", "Done", "delivered", "init", "é" * 300)}
    assert {s: (r.status_code, len(r.json()["history"])) for s, r in found.items()} == {
        "done": (200, 1), "DONE": (200, 0), "Done": (200, 0), "delivered": (200, 0),
        "init": (200, 0), "é" * 300: (200, 0)}


def test_top_up_creates_the_account_and_answers_done(
    shared_gateway: Gateway, user_id: int
) -> None:
    with shared_gateway.client() as c:
        missing = c.get("/balance", params={"user_id": user_id})
        first = c.post("/balance/add", json={"user_id": user_id, "balance": 100,
                                             "description": "top-up"})
        second = c.post("/balance/add", json={"user_id": user_id, "balance": 50})
        view = c.get("/balance", params={"user_id": user_id}).json()
    assert (missing.status_code, missing.json()) == (
        200, {"balance": 0, "transactions": [], "next_cursor": None})
    assert (first.status_code, first.json(), second.json()) == (200, "done", "done")
    assert view["balance"] == 150
    assert [(t["Amount"], t["TransactionType"]) for t in view["transactions"]] == [
        (50, "deposit"), (100, "deposit")]
    assert view["transactions"][1]["Description"] == "top-up"


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
    assert (charge["Amount"], charge["TransactionType"], charge["transaction_id"]) == (
        -6, "withdrawal", f"charge:{sms}")
    assert [t["TransactionType"] for t in page2["transactions"]] == ["deposit"]
    assert page2["next_cursor"] is None


def test_top_up_with_an_idempotency_key_applies_once(
    shared_gateway: Gateway, user_id: int
) -> None:
    with shared_gateway.client() as c:
        for _ in range(3):
            r = c.post("/balance/add", json={"user_id": user_id, "balance": 70},
                       headers={"Idempotency-Key": "invoice-17"})
            assert (r.status_code, r.json()) == (200, "done")
        view = c.get("/balance", params={"user_id": user_id}).json()
    assert view["balance"] == 70 and len(view["transactions"]) == 1


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
def test_bad_top_up_is_400_and_writes_nothing(
    shared_gateway: Gateway, body: dict[str, object], field: str
) -> None:
    before = shared_gateway.query("SELECT COUNT(*) FROM user_transactions")[0][0]
    with shared_gateway.client() as c:
        r = c.post("/balance/add", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(f"{field}:"), r.json()
    assert shared_gateway.query("SELECT COUNT(*) FROM user_transactions")[0][0] == before
