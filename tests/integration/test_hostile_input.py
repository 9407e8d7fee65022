"""Hostile and edge input over real HTTP: always a 4xx naming the field, never a 500 or a
hang, and nothing written. Numbers at the int64 edges, content types, nesting, size."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from smsgw_core.ledger import MAX_BALANCE
from smsgw_core.pagination import encode_cursor
from tests.integration.harness import Gateway
from tests.mariadb import mariadb_database

INT64_MAX = 2**63 - 1
JSON = {"content-type": "application/json"}
SEND = {"customer_id": 7, "text": "hi", "recipients": ["09121234567"], "type": "normal"}
TOP_UP = {"user_id": 7, "balance": 10, "description": "x"}
DEEP = 100_000  # far past msgspec's recursion limit


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def shared_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """`smsgw serve` on each database, with the in-process bus: what differs between the
    backends here is how they store numbers and strings, not how messages travel."""
    with ExitStack() as stack:
        workdir = tmp_path_factory.mktemp("hostile")
        database = (f"sqlite+aiosqlite:///{workdir / 'smsgw.db'}" if request.param == "sqlite"
                    else stack.enter_context(mariadb_database("hostile")))
        env = {**os.environ, "SMSGW_OPERATORS": "A=sim://,B=sim://",
               "SMSGW_DATABASE_URL": database, "SMSGW_BROKER_URL": "memory://"}
        gateway = Gateway("embedded", env, workdir).start()
        try:
            yield gateway
        finally:
            gateway.stop()


def footprint(gw: Gateway) -> tuple[Any, ...]:
    """Everything a request could write: row counts of every table, and the money."""
    counts = tuple(
        gw.query(f"SELECT COUNT(*) FROM {table}")[0][0]
        for table in ("user_balances", "user_transactions", "sms_status", "outbox_events",
                      "idempotency_keys")
    )
    money = gw.query("SELECT COALESCE(SUM(balance), 0) FROM user_balances")[0][0]
    return (*counts, int(money))


def body(**change: Any) -> bytes:
    return json.dumps(change).encode()


def with_(base: dict[str, Any], **change: Any) -> bytes:
    return json.dumps({**base, **change}).encode()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (route, request kwargs, expected status, the field the message names or None)
SWEEP: list[tuple[str, dict[str, Any], int, str | None]] = [
    # content types: only JSON, so no page elsewhere can post here without a preflight
    ("POST /sms/send", {"content": with_(SEND), "headers": {"content-type": "text/plain"}},
     415, "Content-Type"),
    ("POST /sms/send", {"content": b"customer_id=7&text=hi", "headers": {
        "content-type": "application/x-www-form-urlencoded"}}, 415, "Content-Type"),
    ("POST /sms/send", {"files": {"f": b"x"}}, 415, "Content-Type"),
    ("POST /sms/send", {"content": with_(SEND), "headers": {}}, 415, "Content-Type"),
    ("POST /sms/send", {"content": with_(SEND), "headers": {
        "content-type": "application/json; charset=iso-8859-1"}}, 415, "Content-Type"),
    ("POST /balance/add", {"content": with_(TOP_UP), "headers": {"content-type": "text/plain"}},
     415, "Content-Type"),
    ("POST /balance/add", {"content": b"user_id=7&balance=10", "headers": {
        "content-type": "application/x-www-form-urlencoded"}}, 415, "Content-Type"),
    # nesting and shape
    ("POST /sms/send", {"content": b'{"customer_id":7,"x":' + nested(DEEP) + b"}"}, 400, None),
    ("POST /balance/add", {"content": b'{"user_id":7,"balance":10,"d":' + nested(DEEP) + b"}"},
     400, None),
    ("POST /balance/add", {"content": b'{"description":' + nested(DEEP) + b"}"},
     400, "description"),  # refused at its first bracket: no deeper is read
    ("POST /sms/send", {"content": nested(DEEP)}, 400, "body"),
    ("POST /sms/send", {"content": b"null"}, 400, "body"),
    ("POST /balance/add", {"content": b'"top up"'}, 400, "body"),
    ("POST /balance/add", {"content": b'{"user_id":7,"balance":10,"description":"\xff\xfe"}'},
     400, None),
    # types: money and ids are integers, strictly (a whole 7.0 is 7: see below)
    ("POST /sms/send", {"content": with_(SEND, customer_id="7")}, 400, "customer_id"),
    ("POST /sms/send", {"content": with_(SEND, customer_id=7.5)}, 400, "customer_id"),
    ("POST /sms/send", {"content": with_(SEND, customer_id=True)}, 400, "customer_id"),
    ("POST /balance/add", {"content": with_(TOP_UP, balance="10")}, 400, "balance"),
    ("POST /balance/add", {"content": with_(TOP_UP, balance=10.5)}, 400, "balance"),
    ("POST /balance/add", {"content": b'{"user_id":7,"balance":1e-400}'}, 400, "balance"),
    ("POST /balance/add", {"content": with_(TOP_UP, balance=[10])}, 400, "balance"),
    ("POST /balance/add", {"content": with_(TOP_UP, user_id="7")}, 400, "user_id"),
    ("POST /balance/add", {"content": with_(TOP_UP, description=7)}, 400, "description"),
    ("POST /balance/add", {"content": b'{"user_id":7,"balance":1e400}'}, 400, "balance"),
    # numbers at the int64 edges
    ("POST /sms/send", {"content": with_(SEND, customer_id=INT64_MAX + 1)}, 400, "customer_id"),
    ("POST /sms/send", {"content": with_(SEND, customer_id=-(2**63) - 1)}, 400, "customer_id"),
    ("POST /sms/send", {"content": with_(SEND, customer_id=10**400)}, 400, "customer_id"),
    ("POST /balance/add", {"content": with_(TOP_UP, user_id=INT64_MAX + 1)}, 400, "user_id"),
    ("POST /balance/add", {"content": with_(TOP_UP, balance=INT64_MAX)}, 400, "balance"),
    ("POST /balance/add", {"content": with_(TOP_UP, balance=MAX_BALANCE + 1)}, 400, "balance"),
    ("POST /balance/add", {"content": with_(TOP_UP, balance=-(2**63))}, 400, "balance"),
    ("GET /sms/history", {"params": {"user_id": INT64_MAX + 1}}, 400, "user_id"),
    ("GET /sms/history", {"params": {"user_id": 10**40}}, 400, "user_id"),
    ("GET /sms/history", {"params": {"user_id": -(2**63) - 1}}, 400, "user_id"),
    ("GET /sms/history", {"params": {"user_id": 7, "limit": INT64_MAX + 1}}, 400, "limit"),
    ("GET /sms/history", {"params": {"user_id": 7, "cursor": encode_cursor(INT64_MAX + 1)}},
     400, "cursor"),
    ("GET /sms/history", {"params": {"user_id": 7, "cursor": encode_cursor(10**19 - 1)}},
     400, "cursor"),
    ("GET /sms/history", {"params": {"user_id": 7, "cursor": "A" * 20_000}}, 400, "cursor"),
    ("GET /balance", {"params": {"user_id": INT64_MAX + 1}}, 400, "user_id"),
    ("GET /balance", {"params": {"user_id": 0}}, 400, "user_id"),
    ("GET /balance", {"params": {"user_id": 7, "limit": -(2**63)}}, 400, "limit"),
    ("GET /balance", {"params": {"user_id": 7, "cursor": encode_cursor(INT64_MAX + 1)}},
     400, "cursor"),
    # integers in a query are integers: whole numbers only, exactly read
    ("GET /balance", {"params": {"user_id": "7.5"}}, 400, "user_id"),
    ("GET /balance", {"params": {"user_id": "1e-3"}}, 400, "user_id"),
    ("GET /balance", {"params": {"user_id": "1e999999999"}}, 400, "user_id"),
    ("GET /balance", {"params": {"user_id": "9007199254740993.0"}}, 400, "user_id"),  # no float
    ("GET /balance", {"params": {"user_id": "0x10"}}, 400, "user_id"),
    ("GET /sms/history", {"params": {"user_id": " 7"}}, 400, "user_id"),
    ("GET /sms/history", {"params": {"user_id": 7, "limit": "5.5"}}, 400, "limit"),
    ("GET /sms/history", {"params": {"user_id": 7, "cursor": "5.5"}}, 400, "cursor"),
    # size
    ("POST /sms/send", {"content": with_(SEND, text="x" * 1_000_000)}, 400, "text"),
    ("POST /sms/send", {"content": with_(SEND, recipients=["09121234567"] * 100_000)},
     400, "recipients"),
    ("POST /balance/add", {"content": b" " * 11_000_000}, 413, None),
    ("POST /balance/add", {"content": with_(TOP_UP), "headers": {
        **JSON, "Idempotency-Key": "k" * 101}}, 400, "Idempotency-Key"),
    ("POST /sms/send", {"content": with_(SEND), "headers": {
        **JSON, "Idempotency-Key": "k" * 101}}, 400, "Idempotency-Key"),
    ("POST /balance/add", {"content": with_(TOP_UP), "headers": {
        **JSON, "Idempotency-Key": "k" * 1_000_000}}, 400, "Idempotency-Key"),
    ("POST /balance/add", {"content": with_(TOP_UP), "headers": {
        **JSON, "Idempotency-Key": ""}}, 400, "Idempotency-Key"),
]


@pytest.mark.parametrize(("route", "request_kwargs", "status", "field"), SWEEP,
                         ids=[f"{r}-{i}" for i, (r, *_) in enumerate(SWEEP)])
def test_hostile_input_is_a_4xx_naming_the_field_and_writes_nothing(
    shared_gateway: Gateway, route: str, request_kwargs: dict[str, Any], status: int,
    field: str | None,
) -> None:
    shared_gateway.top_up(7, 1000)  # so that a send that got through would be charged
    before, logged = footprint(shared_gateway), len(shared_gateway.logs())
    method, path = route.split()
    kwargs = {**request_kwargs}
    if "content" in kwargs:
        kwargs.setdefault("headers", JSON)
    with httpx.Client(base_url=shared_gateway.url, timeout=30) as c:
        r = c.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    message = r.json()["message"]
    if field is not None:
        assert message.startswith(f"{field}:"), message
    assert footprint(shared_gateway) == before
    assert "Traceback" not in shared_gateway.logs()[logged:]


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8",
    "application/vnd.smsgw+json",
])
def test_json_content_types_are_accepted(
    shared_gateway: Gateway, user_id: int, content_type: str
) -> None:
    with shared_gateway.client() as c:
        r = c.post("/balance/add", content=body(user_id=user_id, balance=5),
                   headers={"content-type": content_type})
    assert (r.status_code, r.json()) == (200, "done"), r.text


def test_a_repeated_json_key_takes_its_last_value(shared_gateway: Gateway, user_id: int) -> None:
    raw = f'{{"user_id":{user_id},"balance":1,"balance":30,"description":"a","description":"b"}}'
    with shared_gateway.client() as c:
        r = c.post("/balance/add", content=raw.encode(), headers=JSON)
        view = c.get("/balance", params={"user_id": user_id}).json()
    assert (r.status_code, view["balance"]) == (200, 30)
    assert [(t["Amount"], t["Description"]) for t in view["transactions"]] == [(30, "b")]


def test_the_balance_stops_at_its_maximum(shared_gateway: Gateway, user_id: int) -> None:
    with shared_gateway.client() as c:
        full = c.post("/balance/add", json={"user_id": user_id, "balance": MAX_BALANCE})
        before = footprint(shared_gateway)
        over = c.post("/balance/add", json={"user_id": user_id, "balance": 1},
                      headers={"Idempotency-Key": "one-more"})
        after = footprint(shared_gateway)
        view = c.get("/balance", params={"user_id": user_id}).json()
        send = c.post("/sms/send", json={**SEND, "customer_id": user_id})
    assert (full.status_code, full.json()) == (200, "done")
    assert over.status_code == 409 and over.json()["message"].startswith("balance:"), over.text
    assert after == before
    assert view["balance"] == MAX_BALANCE and len(view["transactions"]) == 1
    assert send.status_code == 200 and send.json()["cost"] == 1  # sends are not free
    assert int(shared_gateway.query(
        "SELECT balance FROM user_balances WHERE user_id = ?", user_id)[0][0]) == MAX_BALANCE - 1


def test_a_top_up_key_replays_its_answer_and_refuses_another_body(
    shared_gateway: Gateway, user_id: int
) -> None:
    key = {"Idempotency-Key": "k" * 100}  # the longest: its transaction id must still fit
    with shared_gateway.client() as c:
        first = c.post("/balance/add", json={"user_id": user_id, "balance": 70}, headers=key)
        c.post("/balance/add", json={"user_id": user_id, "balance": 5})
        again = c.post("/balance/add", json={"user_id": user_id, "balance": 70}, headers=key)
        more = c.post("/balance/add", json={"user_id": user_id, "balance": 80}, headers=key)
        other = c.post("/balance/add", json={"user_id": user_id, "balance": 70,
                                             "description": "other"}, headers=key)
        view = c.get("/balance", params={"user_id": user_id}).json()
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json() == again.json() == "done"
    for conflict in (more, other):
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["message"].startswith("Idempotency-Key")
    assert view["balance"] == 75 and [t["Amount"] for t in view["transactions"]] == [5, 70]


def test_long_strings_in_a_query_only_match_nothing(
    shared_gateway: Gateway, user_id: int
) -> None:
    with shared_gateway.client() as c:
        r = c.get("/sms/history", params={"user_id": user_id, "sms_identifier": "é" * 5_000})
    assert r.status_code == 200 and r.json() == {"history": [], "next_cursor": None}


def test_a_whole_number_spelled_as_a_float_is_that_integer_exactly(
    shared_gateway: Gateway, user_id: int
) -> None:
    """JSON Schema, and so the document, calls 10.0 the integer 10: so does the
    gateway, reading the spelling as a decimal (never through a float)."""
    big = 2**53 + 1 + user_id  # a float would make it 2**53 + user_id or so
    with httpx.Client(base_url=shared_gateway.url, timeout=30) as c:
        spelled = [
            c.post("/balance/add", headers=JSON,
                   content=f'{{"user_id":{user_id}.0,"balance":1e1}}'.encode()),
            c.post("/balance/add", headers=JSON,
                   content=f'{{"user_id":{user_id},"balance":2.50e1}}'.encode()),
            c.post("/balance/add", headers=JSON,
                   content=f'{{"user_id":{big}.0,"balance":5.0}}'.encode()),
        ]
        mine = c.get("/balance", params={"user_id": f"{user_id}.0"})
        exact = c.get("/balance", params={"user_id": big})
        sent = c.post("/sms/send", headers=JSON, content=with_(SEND, customer_id=float(user_id)))
    assert [(r.status_code, r.json()) for r in spelled] == [(200, "done")] * 3
    assert mine.status_code == 200 and mine.json()["balance"] == 35
    assert exact.json()["balance"] == 5  # the account is exactly the id written
    assert sent.status_code == 200, sent.text


def test_a_cursor_at_the_int64_edge_is_served(shared_gateway: Gateway, user_id: int) -> None:
    shared_gateway.top_up(user_id, 5)
    cursor = encode_cursor(INT64_MAX)  # the largest position: everything is older
    with shared_gateway.client() as c:
        balance = c.get("/balance", params={"user_id": user_id, "cursor": cursor})
        history = c.get("/sms/history", params={"user_id": INT64_MAX, "cursor": cursor})
    assert balance.status_code == 200 and len(balance.json()["transactions"]) == 1
    assert history.status_code == 200 and history.json()["history"] == []


# Every integer a route reads, with the range it takes: at and past each int64 edge,
# an integer is served or refused with a 400 naming it, never a 500.
EDGES = [-(2**63) - 1, -(2**63), -1, 0, 1, 1000, 1001, MAX_BALANCE, MAX_BALANCE + 1,
         INT64_MAX, INT64_MAX + 1, 2**64, 10**30]
INTEGERS: list[tuple[str, str, str, range]] = [
    ("POST /sms/send", "body", "customer_id", range(1, INT64_MAX + 1)),
    ("POST /balance/add", "body", "user_id", range(1, INT64_MAX + 1)),
    ("POST /balance/add", "body", "balance", range(1, MAX_BALANCE + 1)),
    ("GET /sms/history", "query", "user_id", range(1, INT64_MAX + 1)),
    ("GET /sms/history", "query", "limit", range(1, 1001)),
    ("GET /sms/history", "cursor", "cursor", range(1, INT64_MAX + 1)),
    ("GET /balance", "query", "user_id", range(1, INT64_MAX + 1)),
    ("GET /balance", "query", "limit", range(1, 1001)),
    ("GET /balance", "cursor", "cursor", range(1, INT64_MAX + 1)),
]
OWN_ACCOUNTS = itertools.count(10**12)  # above the ids conftest hands out
BASE: dict[str, dict[str, Any]] = {
    "POST /sms/send": SEND, "POST /balance/add": TOP_UP,
    "GET /sms/history": {"user_id": 7}, "GET /balance": {"user_id": 7},
}


@pytest.mark.parametrize(("route", "where", "name", "valid"), INTEGERS,
                         ids=[f"{r}-{n}" for r, _, n, _ in INTEGERS])
def test_every_integer_at_the_int64_edges_is_served_or_a_400(
    shared_gateway: Gateway, route: str, where: str, name: str, valid: range
) -> None:
    path = route.split()[1]
    answers: dict[int, tuple[int, str]] = {}
    with httpx.Client(base_url=shared_gateway.url, timeout=30) as c:
        for value in EDGES:
            before = footprint(shared_gateway)
            if where == "body":
                # Each top-up to an account of its own: the amounts' sum would pass
                # the balance's own maximum, a refusal this test is not about.
                own = {"user_id": next(OWN_ACCOUNTS)} if name == "balance" else {}
                r = c.post(path, content=with_(BASE[route], **own, **{name: value}),
                           headers=JSON)
            else:
                wire = encode_cursor(value) if where == "cursor" else value
                r = c.get(path, params={**BASE[route], name: wire})
            answers[value] = (r.status_code, r.json()["message"] if r.status_code >= 400 else "")
            if r.status_code >= 400:
                assert footprint(shared_gateway) == before, (value, r.text)
    served = {200, 402} if route == "POST /sms/send" else {200}  # 402: nobody's account
    for value, (status, message) in answers.items():
        if value in valid:
            assert status in served, (value, status, message)
        else:
            assert status == 400 and message.startswith(f"{name}:"), (value, status, message)
