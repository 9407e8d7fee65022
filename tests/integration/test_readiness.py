"""/readyz over real HTTP: 503 naming the part at fault when the database or the
broker connection is gone, 200 again once it is back.

The shared RabbitMQ is never stopped: the gateway reaches it through a TCP
forwarder of this test, and the test closes only the gateway's own connections,
server-side, by the name the adapter gives them (`rabbitmqctl close_connection`).
The forwarder refuses new connections meanwhile, so the gateway cannot reconnect
until the test lets it: the outage lasts as long as the test needs to look.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.integration.forwarder import Forwarder
from tests.integration.harness import Gateway, GatewayFactory, wait_until
from tests.services import RABBITMQ_URL, unique_name


def readyz(gateway: Gateway) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{gateway.url}/readyz", timeout=10)
    return response.status_code, response.json()


def not_ready(gateway: Gateway) -> dict[str, Any] | None:
    status, body = readyz(gateway)
    return body if status == 503 else None


# --- the database -------------------------------------------------------------------


def test_readyz_names_the_database_when_it_is_gone(make_gateway: GatewayFactory,
                                                   mode: str) -> None:
    gateway = make_gateway()
    assert readyz(gateway)[0] == 200
    if mode == "embedded":
        # Root reads any file whatever its mode: take the file away instead, and put a
        # directory in its place so that no connection can make a new empty database.
        path = Path(gateway.database_url.split(":///", 1)[1])
        away = path.with_name("away.db")
        os.replace(path, away)
        path.mkdir()
        try:
            body = wait_until(lambda: not_ready(gateway), timeout=10)
        finally:
            path.rmdir()
            os.replace(away, path)
        assert body["checks"]["database"] == f"database file {path} is missing"
        wait_until(lambda: readyz(gateway)[0] == 200, timeout=10)
    else:
        database = urlsplit(gateway.database_url).path.strip("/")
        gateway.query(f"DROP DATABASE `{database}`")
        body = wait_until(lambda: not_ready(gateway), timeout=10)
        assert database in body["checks"]["database"]
    assert body["message"] == "not ready: database"
    assert body["checks"]["broker"] == "ok"


# --- the broker ---------------------------------------------------------------------


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    parts = urlsplit(RABBITMQ_URL)
    proxy = Forwarder((parts.hostname or "127.0.0.1", parts.port or 5672))
    proxy.accept()
    try:
        yield proxy
    finally:
        proxy.close()


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stderr}"
    return done.stdout


def connections_named(name: str) -> list[str]:
    """Pids of the broker's connections whose client-provided name is `name`."""
    listed = rabbitmqctl("list_connections", "pid", "client_properties")
    return [line.split("\t")[0] for line in listed.splitlines()
            if f'{{"connection_name","{name}"}}' in line]


@pytest.mark.parametrize("mode", ["serve", "split"])  # the in-process bus has no connection
def test_readyz_names_the_broker_while_the_connection_is_down(
    make_gateway: GatewayFactory, mode: str, forwarder: Forwarder
) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is needed to close a connection from the server side")
    name = unique_name("readyz")
    gateway = make_gateway(start=False)
    parts = urlsplit(RABBITMQ_URL)
    gateway.env["SMSGW_BROKER_URL"] = urlunsplit(parts._replace(
        netloc=f"{parts.username}:{parts.password}@127.0.0.1:{forwarder.port}",
        query=f"name={name}",
    ))
    if mode == "split":
        gateway.start("api")  # the API's publisher is the connection /readyz watches
    else:
        gateway.start()
    assert readyz(gateway) == (200, {"status": "ready",
                                     "checks": {"database": "ok", "broker": "ok"}})
    pids = connections_named(name)
    assert pids, "the gateway's connection is not on the broker under its name"

    forwarder.refuse()
    for pid in pids:
        rabbitmqctl("close_connection", pid, "smsgw readiness test")
    body = wait_until(lambda: not_ready(gateway), timeout=20, every=0.1)
    assert body == {"message": "not ready: broker",
                    "checks": {"database": "ok", "broker": "not connected"}}
    assert not_ready(gateway) == body  # still down: it cannot reconnect yet

    forwarder.accept()
    wait_until(lambda: readyz(gateway)[0] == 200, timeout=30, every=0.2)
    assert set(connections_named(name)).isdisjoint(pids)  # a new connection
