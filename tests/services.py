"""The real services the tests use: MariaDB and RabbitMQ on this machine.

Every test run gets its own MariaDB database and its own queue names, so runs
(and parallel sessions on one machine) cannot disturb each other. With
SMSGW_REQUIRE_SERVICES=1 (as in CI) an unreachable service fails the tests;
without it they are skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

MARIADB_HOST = os.environ.get("SMSGW_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("SMSGW_TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("SMSGW_TEST_MARIADB_USER", "root")
RABBITMQ_URL = os.environ.get("SMSGW_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")

RUN_ID = uuid.uuid4().hex[:8]


def services_required() -> bool:
    return os.environ.get("SMSGW_REQUIRE_SERVICES", "") not in ("", "0")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def need(service: str, host: str, port: int) -> None:
    """Fail (services required) or skip (not required) when `service` is down."""
    if reachable(host, port):
        return
    message = f"{service} is not reachable on {host}:{port}"
    if services_required():
        pytest.fail(f"{message} and SMSGW_REQUIRE_SERVICES=1")
    pytest.skip(f"{message} (set SMSGW_REQUIRE_SERVICES=1 to make this a failure)")


def need_mariadb() -> None:
    need("MariaDB", MARIADB_HOST, MARIADB_PORT)


def need_rabbitmq() -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(RABBITMQ_URL)
    need("RabbitMQ", parts.hostname or "127.0.0.1", parts.port or 5672)


def mariadb_server_url() -> str:
    return f"mysql+asyncmy://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}"


def unique_name(purpose: str) -> str:
    """A database or queue name of this run: `smsgw_<purpose>_<run>_<n>`."""
    return f"smsgw_{purpose}_{RUN_ID}_{uuid.uuid4().hex[:6]}"
