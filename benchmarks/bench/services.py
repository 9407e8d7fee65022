"""The MariaDB and RabbitMQ servers the bench runs against, and its database on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from benchmarks.harness import servers


@dataclass(frozen=True, slots=True)
class Services:
    mysql_url: str  # mysql://USER[:PASSWORD]@HOST[:PORT], no database
    amqp_url: str
    database: str

    @property
    def database_url(self) -> str:
        parts = urlsplit(self.mysql_url)
        return f"mysql+asyncmy://{parts.netloc}/{self.database}"

    def endpoints(self) -> list[tuple[str, str, int]]:
        return [("MariaDB", *servers.mysql_endpoint(self.mysql_url)),
                ("RabbitMQ", *servers.amqp_endpoint(self.amqp_url))]

    def sql(self, statement: str, *, database: str | None = "") -> list[tuple[Any, ...]]:
        """Run one statement (in the bench database unless told otherwise), autocommit."""
        return servers.sql(self.mysql_url, self.database if database == "" else database,
                           statement)

    def count(self, where_sql: str) -> int:
        return int(self.sql(f"SELECT COUNT(*) FROM {where_sql}")[0][0])

    def delete_queues(self, names: list[str]) -> None:
        servers.delete_queues(self.amqp_url, names)

    def rabbitmq_version(self) -> str | None:
        return servers.rabbitmq_version(self.amqp_url)
