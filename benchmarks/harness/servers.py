"""The shared MariaDB and RabbitMQ servers: a statement, a clean-up, a version."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit


def mysql_endpoint(mysql_url: str) -> tuple[str, int]:
    parts = urlsplit(mysql_url)
    return parts.hostname or "127.0.0.1", parts.port or 3306


def amqp_endpoint(amqp_url: str) -> tuple[str, int]:
    parts = urlsplit(amqp_url)
    return parts.hostname or "127.0.0.1", parts.port or 5672


def sql(mysql_url: str, database: str | None, statement: str, *params: Any
        ) -> list[tuple[Any, ...]]:
    """Run one statement on mysql://USER[:PASSWORD]@HOST[:PORT] (in `database`), autocommit."""
    import pymysql

    parts = urlsplit(mysql_url)
    host, port = mysql_endpoint(mysql_url)
    conn = pymysql.connect(host=host, port=port, user=parts.username or "root",
                           password=parts.password or "", database=database, autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement, params or None)
            return [tuple(row) for row in cursor.fetchall()]
    finally:
        conn.close()


def delete_queues(amqp_url: str, queues: list[str], exchanges: list[str] | None = None) -> None:
    """Delete the queues (and exchanges) that exist of these names."""
    import aio_pika

    async def delete() -> None:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            for method, names in (("queue_delete", queues), ("exchange_delete", exchanges or [])):
                for name in names:
                    # A failed delete closes its channel: one channel each.
                    channel = await connection.channel()
                    with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                        await getattr(channel, method)(name)

    asyncio.run(delete())


def rabbitmq_version(amqp_url: str) -> str | None:
    import aio_pika

    async def version() -> str | None:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            props = connection.transport.connection.server_properties  # type: ignore[union-attr]
            value = props.get("version")
            return value.decode() if isinstance(value, bytes) else str(value)

    try:
        return asyncio.run(version())
    except Exception:
        return None
