"""Many sends for one customer at once, more than the balance affords."""

from __future__ import annotations

import asyncio

import httpx

SENDS = 100
AFFORDABLE = 10


async def send_all(url: str, user_id: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=SENDS, max_keepalive_connections=SENDS)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        body = {"customer_id": user_id, "text": "race", "recipients": ["09120000001"]}
        return list(await asyncio.gather(
            *(client.post("/sms/send", json=body) for _ in range(SENDS))
        ))
