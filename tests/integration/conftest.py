"""Fixtures starting real gateways; the machinery is in harness.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Gateway, GatewayFactory


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    started: list[Gateway] = []

    def make(operators: str = "A=sim://,B=sim://", start: bool = True, db_name: str = "smsgw.db",
             **extra_env: str) -> Gateway:
        db_path = tmp_path / db_name
        env = {**os.environ, "SMSGW_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
               "SMSGW_OPERATORS": operators, "SMSGW_BROKER_URL": "memory://", **extra_env}
        gateway = Gateway(db_path, env, tmp_path / f"{db_name}.log")
        started.append(gateway)
        return gateway.start() if start else gateway

    yield make
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway()


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for a module's tests that need no special configuration.

    Tests sharing it use their own user ids, so they cannot see each other's rows.
    """
    tmp = tmp_path_factory.mktemp("shared")
    db_path = tmp / "smsgw.db"
    env = {**os.environ, "SMSGW_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
           "SMSGW_OPERATORS": "A=sim://,B=sim://", "SMSGW_BROKER_URL": "memory://"}
    gateway = Gateway(db_path, env, tmp / "smsgw.log").start()
    yield gateway
    gateway.stop()


_user_ids = iter(range(1000, 10**9))


@pytest.fixture
def user_id() -> int:
    """A user id no other test in this run uses."""
    return next(_user_ids)
