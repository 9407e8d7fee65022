"""POST /operators/{name}/receipts: the operator's token, the body strictly read,
and the counts it answers, over the in-memory database."""

from __future__ import annotations

import time
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from smsgw_app.api.app import ApiServices, create_app
from smsgw_app.api.backpressure import AdmittedSender, BacklogGate
from smsgw_core.ledger import Transaction, TransactionType, charge_id
from smsgw_core.messages import MessageType, RecipientMessage, SmsStatus
from smsgw_core.ports import RecipientFinish
from smsgw_core.pricing import Tariff
from smsgw_core.receipts import ReceiptPolicy
from smsgw_core.services.accounts import Accounts
from smsgw_core.services.authenticate import Authenticator
from smsgw_core.services.customers import Customers
from smsgw_core.services.history import History
from smsgw_core.services.keys import Keys
from smsgw_core.services.receipts import ReceiptIntake
from smsgw_core.services.send_limit import LimitedSender, SendLimits
from smsgw_core.services.send_sms import SmsSender
from smsgw_core.system import SystemTokens
from smsgw_core.testing import FakeClock, InMemoryDatabase, SequentialIds

TOKENS = {"A": "token-of-A", "B": "token-of-B"}
URL = "/operators/A/receipts"
AUTH = {"Authorization": "Bearer token-of-A"}


def services(db: InMemoryDatabase, refund: bool = False) -> ApiServices:
    clock, ids = FakeClock(), SequentialIds()
    return ApiServices(
        AdmittedSender(BacklogGate(0), LimitedSender(SendLimits(db.uow, time.monotonic),
                                                     SmsSender(db.uow, clock, ids, Tariff()))),
        History(db.uow), Accounts(db.uow, clock, ids),
        {}, Authenticator(db.uow, time.monotonic, clock), Customers(db.uow, clock),
        Keys(db.uow, clock, SystemTokens()),
        receipts=ReceiptIntake(db.uow, clock, ReceiptPolicy(refund_undelivered=refund)),
        receipt_tokens=TOKENS,
    )


async def taken_by_a(db: InMemoryDatabase, *message_ids: str) -> None:
    """Customer 7's SMS "s1" to one recipient per id, each DONE by operator A with that id."""
    clock = FakeClock()
    now = clock.now()
    recipients = [f"0912000000{n}" for n in range(len(message_ids))]
    async with db.uow() as uow:
        await uow.ledger.apply(Transaction("topup:7", 7, 100, TransactionType.TOPUP, "", now))
        await uow.ledger.apply(Transaction(charge_id("s1"), 7, -2 * len(recipients),
                                           TransactionType.CHARGE, "", now))
        await uow.messages.add([RecipientMessage("s1", 7, r, MessageType.NORMAL,
                                                 SmsStatus.PENDING, "", now, now)
                                for r in recipients])
        await uow.messages.claim_many(["s1"], now)
        await uow.messages.finish_many([RecipientFinish("s1", r, SmsStatus.DONE, "A", mid)
                                        for r, mid in zip(recipients, message_ids, strict=True)],
                                       now)
        await uow.commit()


def receipt(message_id: str, status: str = "delivered", **more: Any) -> dict[str, Any]:
    return {"message_id": message_id, "status": status, **more}


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer token-of-B"}, {"Authorization": "Bearer token-of-A2"},
    {"Authorization": "token-of-A"}, {"Authorization": "Basic token-of-A"},
])
async def test_without_the_operators_own_token_it_is_401_and_takes_nothing(
    headers: dict[str, str],
) -> None:
    db = InMemoryDatabase()
    async with AsyncTestClient(create_app(services(db))) as client:
        answer = await client.post(URL, json=[receipt("x")], headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "receipt token" in answer.json()["message"]
    assert db.state.receipts == {}


async def test_an_operator_without_a_token_or_unknown_cannot_post() -> None:
    db = InMemoryDatabase()
    async with AsyncTestClient(create_app(services(db))) as client:
        for name in ("C", "a", "A%20"):
            answer = await client.post(f"/operators/{name}/receipts", json=[receipt("x")],
                                       headers=AUTH)
            assert answer.status_code == 401, (name, answer.text)


@pytest.mark.parametrize(("body", "field"), [
    ([], "body"),
    ({"message_id": "x", "status": "delivered"}, "body"),
    ([receipt("x", "lost")], "[0].status"),
    ([receipt("x"), {"status": "delivered"}], "[1]"),
    ([receipt("")], "[0].message_id"),
    ([receipt("x" * 101)], "[0].message_id"),
    ([receipt(7)], "[0].message_id"),  # type: ignore[arg-type]
    ([receipt("x", error_code="e" * 33)], "[0].error_code"),
    ([receipt("x", done_at="2026-12-07T10:00:00")], "[0].done_at"),
    ([receipt("x", done_at="yesterday")], "[0].done_at"),
    ([receipt(f"m{n}") for n in range(10_001)], "body"),
])
async def test_a_bad_body_is_400_naming_the_field_and_takes_nothing(
    body: Any, field: str,
) -> None:
    db = InMemoryDatabase()
    async with AsyncTestClient(create_app(services(db))) as client:
        answer = await client.post(URL, json=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith(field), answer.json()
    assert db.state.receipts == {}


async def test_a_body_not_declared_json_is_415() -> None:
    db = InMemoryDatabase()
    async with AsyncTestClient(create_app(services(db))) as client:
        answer = await client.post(URL, content=b'[{"message_id":"x","status":"delivered"}]',
                                   headers={**AUTH, "Content-Type": "text/plain"})
    assert answer.status_code == 415, answer.text
    assert db.state.receipts == {}


@pytest.mark.parametrize("refund", [False, True])
async def test_applied_kept_and_duplicates_are_counted_and_applied_once(refund: bool) -> None:
    db = InMemoryDatabase()
    await taken_by_a(db, "m1", "m2", "m3")
    async with AsyncTestClient(create_app(services(db, refund))) as client:
        first = await client.post(URL, headers=AUTH, json=[
            receipt("m1", done_at="2026-12-07T10:00:00+03:30"),
            receipt("m2", "undelivered", error_code="001"),
            receipt("m2", "delivered"),  # a second one for m2: the first wins
            receipt("unknown-yet"),
        ])
        again = await client.post(URL, headers=AUTH, json=[
            receipt("m1", "expired"), receipt("m3", "expired", error_code="002")])
        other = await client.post("/operators/B/receipts", json=[receipt("m3")],
                                  headers={"Authorization": "Bearer token-of-B"})
    assert first.json() == {"applied": 2, "kept": 1, "duplicates": 1}
    assert again.json() == {"applied": 1, "kept": 0, "duplicates": 1}
    assert other.json() == {"applied": 0, "kept": 1, "duplicates": 0}  # B's m3 is not A's
    statuses = {m.message_id: m.status for _, m in db.state.messages}
    assert statuses == {"m1": SmsStatus.DELIVERED, "m2": SmsStatus.UNDELIVERED,
                        "m3": SmsStatus.EXPIRED}
    refunds = [tx for _, tx in db.state.transactions if tx.type is TransactionType.REFUND]
    if refund:
        assert sorted(tx.amount for tx in refunds) == [2, 2]
        assert {tx.transaction_id for tx in refunds} == {
            "refund:s1:09120000001", "refund:s1:09120000002"}
        assert any("undelivered (receipt from A, error 001)" in tx.description for tx in refunds)
    else:
        assert refunds == []
    assert db.state.balances[7] == sum(tx.amount for _, tx in db.state.transactions)


def test_the_receipt_token_is_read_out_of_the_url_and_never_shown() -> None:
    from smsgw_app.assembly import receipt_tokens
    from smsgw_app.config import ConfigError, Settings

    settings = Settings.from_env({"SMSGW_OPERATORS":
                                  "A=http://op:9001/x?tps=5&receipt_token=S3cret&k=1,B=sim://"})
    a, _ = settings.operators
    assert (a.url, a.tps, a.receipt_token) == ("http://op:9001/x?k=1", 5.0, "S3cret")
    assert "S3cret" not in repr(a)  # not in a log line that prints the spec
    assert receipt_tokens(settings) == {"A": "S3cret"}  # B posts none
    with pytest.raises(ConfigError) as bad:
        Settings.from_env({"SMSGW_OPERATORS": "A=ftp://op?receipt_token=S3cret"})
    assert "S3cret" not in str(bad.value) and "receipt_token=***" in str(bad.value)
    with pytest.raises(ConfigError, match="receipt_token: expected 1-200 visible"):
        Settings.from_env({"SMSGW_OPERATORS": "A=sim://?receipt_token=a%20b"})


def test_an_operators_password_is_never_in_an_error_or_the_specs_repr() -> None:
    from smsgw_app.config import ConfigError, Settings

    with pytest.raises(ConfigError) as bad:
        Settings.from_env({"SMSGW_OPERATORS": "MCI=smpp://gw:pa55@host:2775?window=0"})
    assert "pa55" not in str(bad.value) and "gw:***@host" in str(bad.value)
    [spec] = Settings.from_env(
        {"SMSGW_OPERATORS": "MCI=smpp://gw:pa55@host:2775?window=3"}).operators
    assert "pa55" not in repr(spec) and spec.url == "smpp://gw:pa55@host:2775?window=3"
