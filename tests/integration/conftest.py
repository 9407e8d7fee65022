"""Gateways for the end-to-end tests, in every mode; the machinery is in harness.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.integration.harness import MODES, Gateway, GatewayFactory
from tests.mariadb import mariadb_database
from tests.rabbitmq import rabbitmq_names
from tests.services import RABBITMQ_URL, need_rabbitmq


def gateway_env(mode: str, workdir: Path, stack: ExitStack, **extra: str) -> dict[str, str]:
    # A recipient SENDING when its worker dies is claimed again once its lease lapses
    # (60 s by default): 10 s keeps the crash tests short, and still leaves a loaded
    # machine's slowest delivery far inside its lease (no resend of work in progress).
    # Each gateway's webhook sealing key in its own workdir (not the checkout's).
    env = {**os.environ, "SMSGW_OPERATORS": "A=sim://,B=sim://",
           "SMSGW_DELIVERY_LEASE_S": "10",
           "SMSGW_WEBHOOK_KEY_FILE": str(workdir / "webhook.key"), **extra}
    if mode == "embedded":
        env["SMSGW_DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir / 'smsgw.db'}"
        env["SMSGW_BROKER_URL"] = "memory://"
        return env
    need_rabbitmq()
    env["SMSGW_DATABASE_URL"] = stack.enter_context(mariadb_database("e2e"))
    env["SMSGW_BROKER_URL"] = RABBITMQ_URL
    env.update(stack.enter_context(rabbitmq_names()))
    return env


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_gateway(mode: str, tmp_path: Path) -> Iterator[GatewayFactory]:
    with ExitStack() as stack:
        started: list[Gateway] = []

        def make(operators: str = "A=sim://,B=sim://", start: bool = True, **env: str) -> Gateway:
            workdir = tmp_path / f"gateway{len(started)}"
            workdir.mkdir()
            gateway = Gateway(mode, gateway_env(mode, workdir, stack, SMSGW_OPERATORS=operators,
                                                **env), workdir)
            started.append(gateway)
            return gateway.start() if start else gateway

        try:
            yield make
        finally:
            for gateway in started:
                gateway.stop()


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> Gateway:
    return make_gateway()


@pytest.fixture(scope="module", params=MODES)
def shared_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """One gateway for a module's tests that need no special configuration.

    Tests sharing it use their own user ids, so they cannot see each other's rows.
    """
    with ExitStack() as stack:
        workdir = tmp_path_factory.mktemp("shared")
        gateway = Gateway(str(request.param), gateway_env(str(request.param), workdir, stack),
                          workdir).start()
        try:
            yield gateway
        finally:
            gateway.stop()


_user_ids = iter(range(1000, 10**9))


@pytest.fixture
def user_id() -> int:
    """A user id no other test in this run uses."""
    return next(_user_ids)
