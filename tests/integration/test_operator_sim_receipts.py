"""The HTTP operator simulator reporting receipts to a real HTTP receiver.

The receiver plays the gateway's receipts route: it answers 503 to the first
batches (the database away), 401 to a wrong token, 400 when told to, and 200
otherwise, keeping what it acknowledged. Every receipt the simulator owes must
arrive exactly once, and /stats and /receipts must say what the receiver got.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from smsgw_adapters.operators.http import HttpOperator, operator_http_client
from smsgw_adapters.operators.simulator_server import SimulatorState, running_simulator
from smsgw_core.operators import OperatorError, OutgoingSms
from tests.integration.harness import free_port

PLAN = "delivered=0.85,undelivered=0.08,expired=0.02,none=0.05"
TOKEN = "s3cret-A"
CODES = {"delivered": "", "undelivered": "001", "expired": "002"}


@dataclass
class Receiver:
    """The gateway's receipts route, as far as an operator can tell."""

    token: str = TOKEN
    unavailable: int = 0  # the first batches with the right token get a 503
    malformed: bool = False  # every batch with the right token gets a 400
    got: list[dict[str, Any]] = field(default_factory=list)  # acknowledged (200)
    tries: list[tuple[int, str, list[dict[str, Any]]]] = field(default_factory=list)
    arrived: dict[str, float] = field(default_factory=dict)  # message id -> monotonic

    async def handle(self, request: web.Request) -> web.Response:
        batch = await request.json()
        status = self._answer(request.headers.get("Authorization", ""))
        self.tries.append((status, request.headers.get("Authorization", ""), batch))
        if status == 200:
            self.got.extend(batch)
            self.arrived.update((receipt["message_id"], time.monotonic()) for receipt in batch)
            return web.json_response({"applied": len(batch), "kept": 0, "duplicates": 0})
        return web.json_response({"error": "no"}, status=status)

    def _answer(self, authorization: str) -> int:
        if authorization != f"Bearer {self.token}":
            return 401
        if self.malformed:
            return 400
        if sum(1 for status, *_ in self.tries if status == 503) < self.unavailable:
            return 503
        return 200

    def batches(self, status: int, token: str = TOKEN) -> list[list[dict[str, Any]]]:
        return [batch for answered, authorization, batch in self.tries
                if answered == status and authorization == f"Bearer {token}"]


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver, port: int = 0) -> AsyncIterator[str]:
    """Serve `receiver` on `port` (0: a free one); yields its receipts URL."""
    app = web.Application()
    app.router.add_post("/operators/{name}/receipts", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/operators/A/receipts"
    finally:
        await runner.cleanup()


def sms(n: int) -> OutgoingSms:
    recipient = f"+98912{n:07d}"
    return OutgoingSms(recipient, "hello", f"sms-{n}:{recipient}")


async def send_all(operator: HttpOperator, numbers: range) -> dict[str, str]:
    """reference -> message id of each send the simulator took."""
    taken: dict[str, str] = {}
    gate = asyncio.Semaphore(32)

    async def one(n: int) -> None:
        async with gate:
            with contextlib.suppress(OperatorError):  # a simulated outage
                taken[sms(n).reference] = await operator.send(sms(n))

    await asyncio.gather(*(one(n) for n in numbers))
    return taken


async def get_json(client: aiohttp.ClientSession, url: str) -> Any:
    async with client.get(url) as response:
        assert response.status == 200
        return await response.json()


async def until(condition: Callable[[], Any], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def settled(client: aiohttp.ClientSession, url: str) -> Callable[[], Any]:
    async def check() -> bool:
        stats = await get_json(client, f"{url}/stats")
        return bool(stats["receipts"]["pending"] == 0)
    return check


async def test_every_receipt_arrives_once_through_503s_and_the_right_token_only() -> None:
    receiver = Receiver(unavailable=2)
    async with (receiving(receiver) as receipts_url, operator_http_client() as client):
        right = SimulatorState("A", fail_rate=0.1, seed=42, receipt_url=receipts_url,
                               receipt_token=TOKEN, receipts=PLAN, receipt_delay_ms=100)
        wrong = SimulatorState("B", receipt_url=receipts_url, receipt_token="stale",
                               receipt_delay_ms=0)
        async with running_simulator(right) as url, running_simulator(wrong) as wrong_url:
            operator = HttpOperator("A", url, client, 5.0)
            taken = await send_all(operator, range(1500))
            resent = await send_all(operator, range(0, 1500, 10))
            wrongly = await send_all(HttpOperator("B", wrong_url, client, 5.0), range(3))
            await until(settled(client, url))
            stats = await get_json(client, f"{url}/stats")
            listing = await get_json(client, f"{url}/receipts")
            await asyncio.sleep(0.5)  # B goes on trying
            wrong_stats = await get_json(client, f"{wrong_url}/stats")

    # A resend gets the same id and owes no second receipt (one whose first try met
    # the simulated outage is taken now, the first time).
    assert all(taken[reference] == message_id for reference, message_id in resent.items()
               if reference in taken)
    accepted = set(taken.values()) | set(resent.values())
    named = [receipt["message_id"] for receipt in receiver.got]
    assert len(named) == len(set(named))  # each once
    assert set(named) | set(listing["none"]) == accepted  # none lost
    assert not set(named) & set(listing["none"])
    assert {r["message_id"]: r["status"] for r in receiver.got} == listing["reported"]
    statuses = Counter(r["status"] for r in receiver.got)
    assert stats["accepted"] == len(accepted)
    assert stats["duplicates"] == sum(1 for reference in resent if reference in taken) > 0
    assert stats["receipts"] == {
        "delivered": statuses["delivered"], "undelivered": statuses["undelivered"],
        "expired": statuses["expired"], "none": len(listing["none"]),
        "pending": 0, "refused": 0,
    }
    assert all(statuses[s] for s in CODES) and listing["none"]  # the plan's every fate
    for receipt in receiver.got:
        assert receipt["error_code"] == CODES[receipt["status"]]
        assert receipt["done_at"].endswith("Z") and datetime.fromisoformat(receipt["done_at"])
    # The batches that met the 503s were tried again, the same, until one got its 200.
    unavailable, acknowledged = receiver.batches(503), receiver.batches(200)
    assert len(unavailable) == 2 and unavailable[0] == unavailable[1] == acknowledged[0]
    assert max(len(batch) for batch in acknowledged) <= 1000
    assert len(acknowledged) < len(named) / 5  # in batches, not one by one
    # B's token is wrong: its receipts are refused 401 and tried again, never dropped.
    assert len(receiver.batches(401, "stale")) >= 3
    assert wrong_stats["receipts"]["pending"] == len(wrongly) == 3
    assert wrong_stats["receipts"]["delivered"] == wrong_stats["receipts"]["refused"] == 0


async def test_receipts_wait_for_a_receiver_that_is_not_listening_yet() -> None:
    receiver, port = Receiver(), free_port()  # bound and released: nothing listens there
    state = SimulatorState("A", receipt_url=f"http://127.0.0.1:{port}/operators/A/receipts",
                           receipt_token=TOKEN)
    async with running_simulator(state) as url, operator_http_client() as client:
        taken = await send_all(HttpOperator("A", url, client, 5.0), range(20))
        await asyncio.sleep(0.4)  # connections refused, tried again
        waiting = (await get_json(client, f"{url}/stats"))["receipts"]
        async with receiving(receiver, port):
            await until(settled(client, url))
        stats = (await get_json(client, f"{url}/stats"))["receipts"]
    assert waiting["pending"] == 20 and waiting["delivered"] == 0
    assert sorted(r["message_id"] for r in receiver.got) == sorted(taken.values())
    assert stats["delivered"] == 20 and stats["pending"] == 0


async def test_a_receipt_due_before_a_slow_answer_arrives_first() -> None:
    receiver = Receiver()
    async with receiving(receiver) as receipts_url, operator_http_client() as client:
        state = SimulatorState("A", latency_ms=800, receipt_url=receipts_url,
                               receipt_token=TOKEN, receipt_delay_ms=100)
        async with running_simulator(state) as url:
            message_id = await HttpOperator("A", url, client, 5.0).send(sms(1))
            answered = time.monotonic()
    assert message_id in receiver.arrived and receiver.arrived[message_id] < answered


async def test_a_batch_refused_as_malformed_is_dropped_and_counted() -> None:
    receiver = Receiver(malformed=True)
    async with receiving(receiver) as receipts_url, operator_http_client() as client:
        state = SimulatorState("A", receipt_url=receipts_url, receipt_token=TOKEN,
                               receipts="delivered=0.5,undelivered=0.5")
        async with running_simulator(state) as url:
            await send_all(HttpOperator("A", url, client, 5.0), range(10))
            await until(settled(client, url))
            stats = (await get_json(client, f"{url}/stats"))["receipts"]
            listing = await get_json(client, f"{url}/receipts")
    assert stats["refused"] == 10 and stats["pending"] == 0
    assert stats["delivered"] == stats["undelivered"] == 0
    assert listing == {"reported": {}, "none": []}
    assert sum(len(batch) for batch in receiver.batches(400)) == 10  # each batch once


async def test_without_a_receipt_url_the_stats_are_as_they_were() -> None:
    async with running_simulator(SimulatorState("A")) as url, operator_http_client() as client:
        await HttpOperator("A", url, client, 5.0).send(sms(1))
        stats = await get_json(client, f"{url}/stats")
    assert stats == {"accepted": 1, "duplicates": 0, "failed": 0, "rejected": 0}
