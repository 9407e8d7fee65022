"""Delivery through a real `smsgw serve`: failover, permanent refusals, refunds, tariffs."""

from __future__ import annotations

import pytest

from tests.integration.harness import Gateway, GatewayFactory, wait_until
from tests.integration.helpers import (
    api_balance,
    db_balance,
    recipients_of,
    refund_id,
    send,
    transactions,
)

pytestmark = pytest.mark.slow

NUMBERS = ["09120000001", "09120000002", "+989120000003"]


def test_default_operators_deliver_through_the_first(shared_gateway: Gateway,
                                                      user_id: int) -> None:
    shared_gateway.top_up(user_id, 100)

    accepted = send(shared_gateway, user_id, NUMBERS)
    rows = shared_gateway.wait_terminal(accepted["sms_identifier"], user_id)

    assert (accepted["segments"], accepted["cost"]) == (1, 3)
    assert sorted(r["recipient"] for r in rows) == sorted(NUMBERS)
    assert {(r["status"], r["provider"], r["type"]) for r in rows} == {("done", "A", "normal")}
    assert api_balance(shared_gateway, user_id)["balance"] == 97
    assert transactions(shared_gateway, user_id, "refund") == []


def test_failover_to_the_second_operator(make_gateway: GatewayFactory, user_id: int) -> None:
    gateway = make_gateway(operators="A=sim://?fail_rate=1,B=sim://")
    gateway.top_up(user_id, 100)

    # Enough recipients to trip A's breaker too: later sends skip A while it is open.
    first = send(gateway, user_id, NUMBERS)
    second = send(gateway, user_id, [f"0935000000{i}" for i in range(8)], sms_type="express")
    rows = [*gateway.wait_terminal(first["sms_identifier"], user_id),
            *gateway.wait_terminal(second["sms_identifier"], user_id)]

    assert len(rows) == 11
    assert {(r["status"], r["provider"]) for r in rows} == {("done", "B")}
    assert transactions(gateway, user_id, "refund") == []
    assert db_balance(gateway, user_id) == 100 - 3 - 8 * 3


def test_every_operator_failing_defers_then_expires_and_refunds_each_recipient_once(
    make_gateway: GatewayFactory, user_id: int
) -> None:
    # No operator takes anything: the recipients wait (PENDING), are tried again,
    # and fail as expired when their validity (here 8 s) runs out.
    gateway = make_gateway(operators="A=sim://?fail_rate=1,B=sim://?fail_rate=1",
                           SMSGW_MESSAGE_TTL_S="8")
    gateway.top_up(user_id, 50)

    normal = send(gateway, user_id, NUMBERS)
    express = send(gateway, user_id, NUMBERS[:2], text="x" * 200, sms_type="express")
    assert (normal["cost"], express["segments"], express["cost"]) == (3, 2, 12)
    shares = {normal["sms_identifier"]: 1, express["sms_identifier"]: 6}
    wait_until(lambda: gateway.logs().count("recipients deferred") >= 4, timeout=8)
    assert transactions(gateway, user_id, "refund") == []  # waiting, not failed
    for sms_identifier in shares:
        rows = gateway.wait_terminal(sms_identifier, user_id)
        assert {(r["status"], r["provider"]) for r in rows} == {("failed", "")}
    descriptions = {t["Description"] for t in api_balance(gateway, user_id)["transactions"]
                    if t["TransactionType"] == "Corrective"}
    assert descriptions == {f"refund: {n} undeliverable (expired)" for n in NUMBERS}

    expected = sorted(
        (refund_id(sms, recipient), shares[sms])
        for (sms, recipient) in recipients_of(gateway, user_id)
    )
    assert len(expected) == 5
    assert sorted(transactions(gateway, user_id, "refund")) == expected
    assert db_balance(gateway, user_id) == 50
    assert sum(amount for _, amount in transactions(gateway, user_id)) == 50

    # A restart redrives unfinished work: finished work must not be refunded again.
    gateway.stop()
    gateway.start()
    second_look = api_balance(gateway, user_id)
    refunds = [t for t in second_look["transactions"] if t["TransactionType"] == "Corrective"]
    assert sorted((t["transaction_id"], t["Amount"]) for t in refunds) == expected
    assert second_look["balance"] == 50
    assert sorted(transactions(gateway, user_id, "refund")) == expected
    assert db_balance(gateway, user_id) == 50


def test_a_refused_number_fails_at_once_and_is_refunded(
    make_gateway: GatewayFactory, user_id: int
) -> None:
    gateway = make_gateway(operators="A=sim://?reject_prefix=0999,B=sim://")
    gateway.top_up(user_id, 10)

    accepted = send(gateway, user_id, ["09990000001", "09120000002"])
    rows = {r["recipient"]: r for r in gateway.wait_terminal(accepted["sms_identifier"], user_id)}

    # Permanent: B is never tried (it would refuse too, and we must not pay twice).
    assert (rows["09990000001"]["status"], rows["09990000001"]["provider"]) == ("failed", "")
    assert (rows["09120000002"]["status"], rows["09120000002"]["provider"]) == ("done", "A")
    assert transactions(gateway, user_id, "refund") == [
        (refund_id(accepted["sms_identifier"], "09990000001"), 1)
    ]
    assert db_balance(gateway, user_id) == 10 - 2 + 1


@pytest.mark.parametrize(
    ("text", "sms_type", "recipients", "segments", "cost"),
    [
        ("hello", "express", 2, 1, 6),
        ("a" * 160, "normal", 3, 1, 3),
        ("a" * 200, "normal", 3, 2, 6),
        ("a" * 200, "express", 2, 2, 12),
        ("س" * 71, "express", 1, 2, 6),  # UCS-2: 70 per single part
    ],
    ids=["express", "160-gsm7", "200-gsm7", "200-gsm7-express", "71-ucs2"],
)
def test_tariff_charges_segments_times_recipients_times_price(
    shared_gateway: Gateway, user_id: int, text: str, sms_type: str, recipients: int,
    segments: int, cost: int,
) -> None:
    shared_gateway.top_up(user_id, 100)
    numbers = [f"0912100000{i}" for i in range(recipients)]

    accepted = send(shared_gateway, user_id, numbers, text=text, sms_type=sms_type)
    rows = shared_gateway.wait_terminal(accepted["sms_identifier"], user_id)

    assert (accepted["segments"], accepted["cost"]) == (segments, cost)
    assert {(r["status"], r["provider"], r["type"]) for r in rows} == {("done", "A", sms_type)}
    assert len(rows) == recipients
    charge = f"charge:{accepted['sms_identifier']}"
    assert transactions(shared_gateway, user_id, "charge") == [(charge, -cost)]
    assert api_balance(shared_gateway, user_id)["balance"] == 100 - cost
