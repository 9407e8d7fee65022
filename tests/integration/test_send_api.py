"""POST /sms/send over real HTTP: the contract of the original service, and bad input."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.integration.harness import Gateway, GatewayFactory


def written(gw: Gateway, user_id: int) -> tuple[int, int, int]:
    """(sms_status rows, transactions, outbox events) belonging to `user_id`."""
    rows = gw.query("SELECT COUNT(*) FROM sms_status WHERE user_id = ?", user_id)[0][0]
    txs = gw.query("SELECT COUNT(*) FROM user_transactions WHERE user_id = ?", user_id)[0][0]
    events = gw.query(
        "SELECT COUNT(*) FROM outbox_events WHERE json_extract(payload, '$.user_id') = ?", user_id
    )[0][0]
    return rows, txs, events


def balance(gw: Gateway, user_id: int) -> int:
    with gw.client() as c:
        return int(c.get("/balance", params={"user_id": user_id}).json()["balance"])


def test_the_original_readme_curl_example_works_as_written(shared_gateway: Gateway) -> None:
    shared_gateway.top_up(1, 100)
    out = subprocess.run(
        ["curl", "--silent", "--location", f"{shared_gateway.url}/sms/send",
         "--header", "Content-Type: application/json",
         "--data", '{\n    "customer_id": 1,\n    "text": "hi",\n    "recipients": [\n'
         '      "09128582812",\n      "091285284834"\n    ],\n    "type": "normal"\n  }'],
        capture_output=True, text=True, check=True,
    )
    body = json.loads(out.stdout)
    assert body["status"] == "processing"
    assert uuid.UUID(body["sms_identifier"])
    assert (body["segments"], body["cost"], body["recipients"]) == (1, 2, 2)
    items = shared_gateway.wait_terminal(body["sms_identifier"], 1)
    assert sorted(i["recipient"] for i in items) == sorted(["09128582812", "091285284834"])


def test_send_charges_segments_times_recipients_times_price(
    shared_gateway: Gateway, user_id: int
) -> None:
    shared_gateway.top_up(user_id, 100)
    with shared_gateway.client() as c:
        r = c.post("/sms/send", json={"customer_id": user_id, "text": "x" * 161,
                                      "recipients": ["+989121111111", "09122222222"],
                                      "type": "express"})
    assert r.status_code == 200, r.text
    assert (r.json()["segments"], r.json()["cost"]) == (2, 2 * 2 * 3)
    assert balance(shared_gateway, user_id) == 100 - 12
    assert written(shared_gateway, user_id) == (2, 2, 1)


def test_duplicate_recipients_are_sent_and_charged_once(
    shared_gateway: Gateway, user_id: int
) -> None:
    shared_gateway.top_up(user_id, 10)
    with shared_gateway.client() as c:
        r = c.post("/sms/send", json={"customer_id": user_id, "text": "hi",
                                      "recipients": ["09121234567", "09121234567", "09127654321"]})
    assert r.status_code == 200, r.text
    assert (r.json()["cost"], r.json()["recipients"]) == (2, 2)
    assert balance(shared_gateway, user_id) == 8
    assert written(shared_gateway, user_id)[0] == 2


@pytest.mark.parametrize("top_up", [0, 1])
def test_short_balance_or_unknown_customer_is_402_and_writes_nothing(
    shared_gateway: Gateway, user_id: int, top_up: int
) -> None:
    if top_up:
        shared_gateway.top_up(user_id, top_up)
    before = written(shared_gateway, user_id)
    with shared_gateway.client() as c:
        r = c.post("/sms/send", json={"customer_id": user_id, "text": "hi",
                                      "recipients": ["09121234567", "09127654321"]})
    assert r.status_code == 402
    assert "insufficient balance" in r.json()["message"]
    assert written(shared_gateway, user_id) == before
    if top_up:
        assert balance(shared_gateway, user_id) == top_up


VALID = {"customer_id": 5, "text": "hi", "recipients": ["09121234567"], "type": "normal"}


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"recipients": []}, 400, "recipients"),
        ({"recipients": [f"0912{i:07d}" for i in range(1001)]}, 400, "recipients"),
        ({"recipients": ["09121234567", "hello", "12"]}, 400, "recipients"),
        ({"text": ""}, 400, "text"),
        ({"text": "x" * 1601}, 400, "text"),
        ({"text": "😀" * 1601}, 400, "text"),
        ({"type": "urgent"}, 400, "type"),
        ({"customer_id": None}, 400, "customer_id"),
        ({"customer_id": 0}, 400, "customer_id"),
        ({"customer_id": -3}, 400, "customer_id"),
        ({"recipients": "09121234567"}, 400, "recipients"),
    ],
)
def test_bad_input_is_4xx_naming_the_field_and_writes_nothing(
    shared_gateway: Gateway, change: dict[str, object], status: int, field: str
) -> None:
    shared_gateway.top_up(5, 10_000)
    body = {**VALID, **change}
    if change.get("customer_id", 1) is None:
        del body["customer_id"]
    before = written(shared_gateway, 5)
    with shared_gateway.client() as c:
        r = c.post("/sms/send", json=body)
    assert r.status_code == status, r.text
    assert r.json()["message"].startswith(f"{field}:"), r.json()
    assert written(shared_gateway, 5) == before


def test_invalid_recipients_are_all_listed(shared_gateway: Gateway) -> None:
    with shared_gateway.client() as c:
        r = c.post("/sms/send", json={**VALID, "recipients": ["09121234567", "hello", "12"]})
    assert r.status_code == 400
    assert "'hello'" in r.json()["message"] and "'12'" in r.json()["message"]


@pytest.mark.parametrize("raw", [b"{bad json", b"", b'{"customer_id": 1,'])
def test_malformed_json_is_400(shared_gateway: Gateway, raw: bytes) -> None:
    with shared_gateway.client() as c:
        r = c.post("/sms/send", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "malformed JSON" in r.json()["message"]


def test_idempotency_key_replays_the_first_answer_and_charges_once(
    shared_gateway: Gateway, user_id: int
) -> None:
    shared_gateway.top_up(user_id, 10)
    body = {"customer_id": user_id, "text": "otp 1234", "recipients": ["09121234567"],
            "type": "express"}
    headers = {"Idempotency-Key": f"key-{user_id}"}
    with shared_gateway.client() as c:
        first = c.post("/sms/send", json=body, headers=headers)
        again = c.post("/sms/send", json=body, headers=headers)
        other = c.post("/sms/send", json={**body, "text": "otp 9999"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["message"]
    assert balance(shared_gateway, user_id) == 10 - 3
    assert written(shared_gateway, user_id) == (1, 2, 1)


def test_the_same_key_from_another_customer_is_independent(
    shared_gateway: Gateway, user_id: int
) -> None:
    other_user = user_id + 500_000_000
    for u in (user_id, other_user):
        shared_gateway.top_up(u, 5)
    with shared_gateway.client() as c:
        a = c.post("/sms/send", json={**VALID, "customer_id": user_id},
                   headers={"Idempotency-Key": "shared"})
        b = c.post("/sms/send", json={**VALID, "customer_id": other_user},
                   headers={"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 200
    assert a.json()["sms_identifier"] != b.json()["sms_identifier"]


def test_routes_refuse_a_number_no_operator_serves_and_route_the_rest(
    make_gateway: GatewayFactory,
) -> None:
    """SMSGW_ROUTES in the real processes: a send with a number no route serves is a
    400 naming it, writing nothing; the others go to their route's operator."""
    gw = make_gateway("A=sim://,B=sim://", SMSGW_ROUTES="0912=B;+98912=A")
    gw.top_up(7, 100)
    before = written(gw, 7)
    with gw.client() as c:
        refused = c.post("/sms/send", json={"customer_id": 7, "text": "hi",
                                            "recipients": ["09121234567", "09351234567"]})
        sent = c.post("/sms/send", json={"customer_id": 7, "text": "hi",
                                         "recipients": ["09121234567", "+989121234567"]})
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"].startswith("recipients:")
    assert "09351234567" in refused.json()["message"]
    assert sent.status_code == 200, sent.text
    assert written(gw, 7)[0] == before[0] + 2  # the refused send wrote nothing
    rows = gw.wait_terminal(sent.json()["sms_identifier"], 7)
    assert {(r["recipient"], r["provider"]) for r in rows} == {
        ("09121234567", "B"), ("+989121234567", "A")}
    assert balance(gw, 7) == 98
