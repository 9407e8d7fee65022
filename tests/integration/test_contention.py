"""Racing sends for one customer over MariaDB: groups of sends that deadlock (or
wait too long) on the customer's rows are run again, so every send is answered
200 or 402, never 500 (it was two 500s in 100)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.integration.harness import GatewayFactory
from tests.integration.helpers import api_balance, transactions
from tests.integration.racing import AFFORDABLE, SENDS, send_all
from tests.mariadb import mariadb_database

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url() -> Iterator[str]:
    with mariadb_database("contention") as url:
        yield url


@pytest.mark.parametrize("mode", ["embedded"])  # the in-process bus over MariaDB
def test_racing_sends_for_one_customer_are_answered_200_or_402(
    make_gateway: GatewayFactory, mode: str, database_url: str
) -> None:
    gateway = make_gateway(start=False)
    gateway.env["SMSGW_DATABASE_URL"] = database_url
    gateway.start()
    for round_ in range(3):
        user_id = 7000 + round_
        gateway.top_up(user_id, AFFORDABLE)

        responses = asyncio.run(send_all(gateway.url, user_id))

        codes = [r.status_code for r in responses]
        assert sorted(set(codes)) == [200, 402], [r.text for r in responses
                                                  if r.status_code >= 500]
        assert codes.count(200) == AFFORDABLE
        assert codes.count(402) == SENDS - AFFORDABLE
        assert len(transactions(gateway, user_id, "charge")) == AFFORDABLE
        assert api_balance(gateway, user_id)["balance"] == 0
