"""The run's own database and queues on the shared MariaDB and RabbitMQ, and how to reach them."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from benchmarks.harness import servers


@dataclass(frozen=True)
class Services:
    mysql_url: str  # mysql://USER[:PASSWORD]@HOST[:PORT]
    amqp_url: str  # amqp://USER:PASSWORD@HOST:PORT/
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def database(self) -> str:
        return f"smsgw_chaos_{self.run}"

    @property
    def queues(self) -> dict[str, str]:
        return {f"SMSGW_{lane.upper()}_QUEUE": f"smsgw_chaos_{self.run}_{lane}"
                for lane in ("express", "normal", "dead_letter")}

    def mysql(self) -> tuple[str, int]:
        return servers.mysql_endpoint(self.mysql_url)

    def amqp(self) -> tuple[str, int]:
        return servers.amqp_endpoint(self.amqp_url)

    def database_url(self, port: int | None = None) -> str:
        """The run's database, directly or through a forwarder on 127.0.0.1:`port`."""
        parts = urlsplit(self.mysql_url)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else "root@"
        host, real_port = self.mysql()
        where = f"127.0.0.1:{port}" if port else f"{host}:{real_port}"
        return f"mysql+asyncmy://{auth}{where}/{self.database}"

    def broker_url(self, port: int) -> str:
        parts = urlsplit(self.amqp_url)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return f"amqp://{auth}127.0.0.1:{port}{parts.path or '/'}"

    def sql(self, statement: str, *params: Any, database: str | None = "") -> list[tuple[Any, ...]]:
        return servers.sql(self.mysql_url, self.database if database == "" else database,
                           statement, *params)

    def create(self) -> None:
        self.sql(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4", database=None)

    def drop(self) -> None:
        with contextlib.suppress(Exception):
            self.sql(f"DROP DATABASE IF EXISTS `{self.database}`", database=None)
        with contextlib.suppress(Exception):
            names = list(self.queues.values())
            servers.delete_queues(self.amqp_url, names, exchanges=names)
