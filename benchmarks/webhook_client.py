"""What a webhook attempt's HTTP costs: the sender's own client (smsgw_adapters/
http_client.py, under HttpWebhookSender) against aiohttp's ClientSession set up as
the sender had it before (a pooled connector, no redirects, a payload made once),
both posting the same signed body to the bench's receiver.

    .venv/bin/python benchmarks/webhook_client.py [--requests 20000] [--rounds 3]

The receiver (bench/webhook_sink.py, a process of its own) listens on 16 ports;
request i goes to port i mod 16, path /c/<i mod 5000>, 128 in flight, as the
webhooks process sends them. For each client, in turns for `--rounds` rounds, it
prints the CPU of this process per request (the receiver's is not counted) and
the median ratio own/aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import uvloop
from aiohttp.payload import BytesPayload

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` importable

from benchmarks.harness.net import free_port  # noqa: E402

from smsgw_adapters.webhooks.address_guard import Guard  # noqa: E402
from smsgw_adapters.webhooks.sender import HttpWebhookSender  # noqa: E402
from smsgw_adapters.webhooks.signing import headers, new_secret, secret_key  # noqa: E402

SINK = ROOT / "benchmarks" / "bench" / "webhook_sink.py"
IN_FLIGHT = 128
BODY = (b'{"type":"message.sent","timestamp":"2026-12-07T00:00:00+00:00","data":{'
        b'"message_id":"0f8fad5b-d9cb-469f-a165-70867728950e","recipient":"79001234567",'
        b'"status":"sent","previous_status":"sending","error_code":null,"operator":"op1",'
        b'"sequence":1}}')

Post = Callable[[int], Awaitable[int]]


async def cpu_per_request(post: Post, requests: int) -> float:
    """Seconds of this process's CPU per request, `IN_FLIGHT` at a time."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        async with slots:
            status = await post(i)
            if status != 200:
                raise RuntimeError(f"the receiver answered {status}")

    await asyncio.gather(*[one(i) for i in range(IN_FLIGHT * 4)])  # connections made
    before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*[one(i) for i in range(requests)])
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / requests


async def main(requests: int, rounds: int, ports: list[int]) -> None:
    secret = new_secret()
    key = secret_key(secret)

    def url(i: int) -> str:
        return f"http://127.0.0.1:{ports[i % len(ports)]}/c/{i % 5000}"

    sender = HttpWebhookSender(Guard(allow_http=True, allow_private=True))

    async def own(i: int) -> int:
        attempt = await sender.send(url(i), f"msg_{i}", BODY, [secret], datetime.now(UTC))
        return attempt.status_code or 0

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, limit_per_host=0, keepalive_timeout=4.0),
        timeout=aiohttp.ClientTimeout(total=None), cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False, auto_decompress=False)

    async def with_aiohttp(i: int) -> int:
        signed = headers([key], f"msg_{i}", int(time.time()), BODY)
        async with asyncio.timeout(10), session.post(
                url(i), data=BytesPayload(BODY, content_type="application/json"),
                headers={**signed, "user-agent": "smsgw-webhooks",
                         "accept-encoding": "identity"},
                allow_redirects=False) as response:
            await response.content.read(200)
            return response.status

    ratios = []
    try:
        for round_ in range(rounds):
            a = await cpu_per_request(with_aiohttp, requests)
            o = await cpu_per_request(own, requests)
            ratios.append(o / a)
            print(f"round {round_ + 1}: own client {o * 1e6:.0f} us, aiohttp {a * 1e6:.0f} us "
                  f"of CPU per request: {o / a:.2f}x")
    finally:
        await sender.close()
        await session.close()
    print(f"own ÷ aiohttp, CPU per request, median of {rounds}: {statistics.median(ratios):.2f}x")


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ports = [free_port() for _ in range(16)]
    sink = subprocess.Popen([sys.executable, str(SINK), "--ports", ",".join(map(str, ports))],
                            stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        uvloop.run(main(args.requests, args.rounds, ports))
    finally:
        sink.terminate()
        sink.wait()
    return 0


if __name__ == "__main__":
    sys.exit(cli())
