"""Queue names of this test run, deleted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import aio_pika

from tests.services import RABBITMQ_URL, unique_name


async def _delete(names: list[str]) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        for name in names:
            # A failed delete (never declared) closes the channel: one channel each.
            for delete in ("queue_delete", "exchange_delete"):
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                    await getattr(channel, delete)(name)


@contextmanager
def rabbitmq_names() -> Iterator[dict[str, str]]:
    """SMSGW_* queue settings naming queues no one else uses; deleted at exit."""
    names = {
        "SMSGW_EXPRESS_QUEUE": unique_name("express"),
        "SMSGW_NORMAL_QUEUE": unique_name("normal"),
        "SMSGW_DEAD_LETTER_QUEUE": unique_name("dead"),
    }
    try:
        yield names
    finally:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _delete(list(names.values()))).result()
