"""kill -9 in the middle of delivery, restart on the same database: every accepted
recipient ends DONE or FAILED, and the ledger still adds up to the cent."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from tests.integration.harness import Gateway, GatewayFactory, wait_until
from tests.integration.helpers import (
    TERMINAL,
    api_balance,
    db_balance,
    recipients_of,
    refund_id,
    send,
    transactions,
    wait_db_terminal,
)

pytestmark = pytest.mark.slow

USERS = (11, 12, 13)
TOP_UPS = (300, 200)
REQUESTS = 20
# Slow enough that the kill finds recipients mid-send; every worker holds one SMS.
BEFORE_CRASH = "A=sim://?latency_ms=1000,B=sim://"
# After the restart A refuses one prefix: recipients still unfinished there fail (and
# are refunded) after the crash; the others are delivered.
AFTER_CRASH = "A=sim://?reject_prefix=0977,B=sim://"
PRICES = {"normal": 1, "express": 3}


@dataclass(frozen=True)
class Sent:
    user_id: int
    cost: int
    share: int  # per recipient: segments x price


def _send_batch(gateway: Gateway) -> dict[str, Sent]:
    sent: dict[str, Sent] = {}
    for i in range(REQUESTS):
        user_id = USERS[i % len(USERS)]
        sms_type = "express" if i % 2 else "normal"
        text = "long " * 40 if i % 4 == 0 else f"message {i}"  # 200 chars: 2 segments
        numbers = [f"0912{i:03d}000{k}" for k in range(3)]
        numbers += [f"0977{i:03d}000{k}" for k in range(2)]
        body = send(gateway, user_id, numbers, text=text, sms_type=sms_type)
        share = body["segments"] * PRICES[sms_type]
        assert body["cost"] == share * len(numbers)
        sent[body["sms_identifier"]] = Sent(user_id, body["cost"], share)
    return sent


def _statuses(gateway: Gateway) -> dict[tuple[str, str], tuple[str, str]]:
    merged: dict[tuple[str, str], tuple[str, str]] = {}
    for user_id in USERS:
        merged.update(recipients_of(gateway, user_id))
    return merged


def test_kill_during_delivery_then_restart_settles_every_recipient_once(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(operators=BEFORE_CRASH)
    for user_id in USERS:
        for amount in TOP_UPS:
            gateway.top_up(user_id, amount)

    sent = _send_batch(gateway)
    wait_until(lambda: any(s == "DONE" for s, _ in _statuses(gateway).values()), timeout=30)
    gateway.kill()

    at_kill = _statuses(gateway)
    counts = Counter(status for status, _ in at_kill.values())
    assert sum(counts.values()) == REQUESTS * 5
    assert counts["SENDING"] > 0, counts  # the crash really interrupted sends in flight
    assert counts["DONE"] + counts["FAILED"] < REQUESTS * 5, counts

    gateway.env["SMSGW_OPERATORS"] = AFTER_CRASH
    gateway.start()
    wait_db_terminal(gateway, list(USERS), timeout=60)

    final = _statuses(gateway)
    assert set(final) == set(at_kill)
    assert {sms for sms, _ in final} == set(sent)
    for key, (status, provider) in final.items():
        before, before_provider = at_kill[key]
        if before in TERMINAL:  # finished before the crash: untouched since
            assert (status, provider) == (before, before_provider), key
        elif key[1].startswith("0977"):
            assert (status, provider) == ("FAILED", ""), key
        else:
            assert (status, provider) == ("DONE", "A"), key
    assert Counter(status for status, _ in final.values())["FAILED"] > 0

    for user_id in USERS:
        _assert_ledger(gateway, user_id, sent, final)


def _assert_ledger(gateway: Gateway, user_id: int, sent: dict[str, Sent],
                   final: dict[tuple[str, str], tuple[str, str]]) -> None:
    mine = {sms: s for sms, s in sent.items() if s.user_id == user_id}
    failed = [(sms, r) for (sms, r), (status, _) in final.items()
              if sms in mine and status == "FAILED"]

    topups = transactions(gateway, user_id, "topup")
    charges = transactions(gateway, user_id, "charge")
    refunds = transactions(gateway, user_id, "refund")
    assert sorted(a for _, a in topups) == sorted(TOP_UPS)
    assert sorted(charges) == sorted((f"charge:{sms}", -s.cost) for sms, s in mine.items())
    # Exactly one refund per FAILED recipient, of its share; none for a DONE one.
    assert sorted(refunds) == sorted((refund_id(sms, r), mine[sms].share) for sms, r in failed)
    assert len(transactions(gateway, user_id)) == len(topups) + len(charges) + len(refunds)

    expected = sum(TOP_UPS) - sum(s.cost for s in mine.values()) + sum(
        mine[sms].share for sms, _ in failed
    )
    assert sum(a for _, a in transactions(gateway, user_id)) == expected
    assert db_balance(gateway, user_id) == expected
    assert api_balance(gateway, user_id)["balance"] == expected
