"""The guarded debit under real concurrent HTTP: no overdraft, no lost charge."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.harness import Gateway
from tests.integration.helpers import api_balance, db_balance, transactions, wait_db_terminal
from tests.integration.racing import AFFORDABLE, SENDS, send_all

pytestmark = pytest.mark.slow


def test_concurrent_sends_never_overdraw(gateway: Gateway, user_id: int) -> None:
    gateway.top_up(user_id, AFFORDABLE)  # one unit per normal single-recipient send

    responses = asyncio.run(send_all(gateway.url, user_id))

    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == AFFORDABLE, [r.text for r in responses if r.status_code >= 500]
    assert codes.count(402) == SENDS - AFFORDABLE
    accepted = {r.json()["sms_identifier"] for r in responses if r.status_code == 200}
    assert len(accepted) == AFFORDABLE

    charges = transactions(gateway, user_id, "charge")
    assert sorted(t for t, _ in charges) == sorted(f"charge:{s}" for s in accepted)
    assert {amount for _, amount in charges} == {-1}
    rows = gateway.query("SELECT sms_identifier FROM sms_status WHERE user_id = ?", user_id)
    assert sorted(s for (s,) in rows) == sorted(accepted)
    assert db_balance(gateway, user_id) == 0
    assert api_balance(gateway, user_id)["balance"] == 0

    # The accepted ones are delivered, and nothing changes the balance afterwards.
    wait_db_terminal(gateway, [user_id], timeout=30)
    assert transactions(gateway, user_id, "refund") == []
    assert sum(amount for _, amount in transactions(gateway, user_id)) == 0
    assert db_balance(gateway, user_id) == 0
