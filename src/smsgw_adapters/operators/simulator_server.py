"""An HTTP operator simulator speaking the protocol in docs/operators.md.

For demos and fault tests: `fail_rate` of the sends are answered 503,
`latency_ms` delays every answer, numbers starting with `reject_prefix` are
refused with 422, and a resend of an accepted reference gets the same message
id without being counted again. `POST /control` changes the behaviour at run
time (take the operator "down" with `{"fail_rate": 1.0}`, back with 0.0),
`GET /stats` tells what it saw, and `GET /references` lists every reference it
accepted, each once (the chaos test compares them across operators, for sends
that reached two).

With `receipt_url` it reports a receipt for each reference it accepted, as the
receipt plan draws it (receipt_plan.py), `receipt_delay_ms` after the send
arrived, POSTed to the gateway until it answers 200; `GET /receipts` lists what
it reported.

    python -m smsgw_adapters.operators.simulator_server --name A --port 9001
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import msgspec
import uvicorn
from litestar import Litestar, Response, get, post
from litestar.params import JSONBody

from smsgw_adapters.operators.receipt_plan import (
    Answer,
    Owed,
    ReceiptPlan,
    ReceiptReporter,
    add_receipt_arguments,
    receipt_options,
)
from smsgw_adapters.operators.simulated import Behaviour, BehaviourError

log = logging.getLogger("smsgw.operator_sim")
SNIPPET_CHARS = 120


class SendRequest(msgspec.Struct):  # unknown fields are ignored: room to grow
    to: str
    text: str
    reference: str


class ControlRequest(msgspec.Struct, forbid_unknown_fields=True):
    fail_rate: float | None = None
    latency_ms: float | None = None
    reject_prefix: str | None = None


@dataclass
class SimulatorState:
    name: str
    fail_rate: float = 0.0
    latency_ms: float = 0.0
    reject_prefix: str = ""
    seed: int | None = None
    message_ids: dict[str, str] = field(default_factory=dict)  # reference -> message id
    duplicates: int = 0
    failed: int = 0
    rejected: int = 0
    receipt_url: str | None = None  # the gateway's receipts route; None: no receipts
    receipt_token: str = ""  # sent as `Authorization: Bearer …`
    receipts: str | None = None  # the receipt plan; None: all delivered
    receipt_delay_ms: float = 0.0  # after the send arrived

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        plan = Behaviour(fail_rate=self.fail_rate, latency_ms=self.latency_ms,
                         receipts=self.receipts, receipt_delay_ms=self.receipt_delay_ms,
                         ).receipt_plan  # raises BehaviourError
        self.receipt_plan = (plan or ReceiptPlan()) if self.receipt_url else None
        self.poster = ReceiptPoster(self.receipt_url or "", self.receipt_token)
        self.reporter = ReceiptReporter(self.poster, self.receipt_delay_ms)

    def take(self, data: SendRequest, arrived: float) -> Response[dict[str, str]]:
        """The answer to a send that arrived at `arrived`, its receipt owed if it is taken."""
        if self.reject_prefix and data.to.startswith(self.reject_prefix):
            self.rejected += 1
            return Response({"error": f"invalid number {data.to}"}, status_code=422)
        if self.random.random() < self.fail_rate:
            self.failed += 1
            return Response({"error": "simulated outage"}, status_code=503)
        if data.reference in self.message_ids:  # a resend: the same id, no second receipt
            self.duplicates += 1
        else:
            message_id = self.message_ids[data.reference] = f"{self.name}-{uuid.uuid4().hex[:16]}"
            if self.receipt_plan is not None:
                self.reporter.owe(message_id, self.receipt_plan.draw(self.random), arrived)
        return Response({"message_id": self.message_ids[data.reference]}, status_code=200)

    async def close(self) -> None:
        """Stop reporting receipts; those not acknowledged yet go with the simulator."""
        await self.reporter.close()
        await self.poster.close()

    def stats(self) -> dict[str, Any]:
        # "receipts" only when it reports them: callers add up the other counts.
        counts: dict[str, Any] = {"accepted": len(self.message_ids),
                                  "duplicates": self.duplicates, "failed": self.failed,
                                  "rejected": self.rejected}
        if self.receipt_plan is not None:
            counts["receipts"] = self.reporter.tally.stats()
        return counts

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "fail_rate": self.fail_rate,
                "latency_ms": self.latency_ms, "reject_prefix": self.reject_prefix}


class ReceiptPoster:
    """Hands receipts to the gateway as an operator does: a JSON list POSTed to its
    receipts route. A 200 acknowledges them, a 400 refuses them for good; anything
    else (a 401, a 503, no answer) means try the same batch again."""

    def __init__(self, url: str, token: str, timeout_s: float = 10.0) -> None:
        self._url, self._token, self._timeout_s = url, token, timeout_s
        self._client: aiohttp.ClientSession | None = None  # made in the reporter's loop

    async def __call__(self, batch: Sequence[Owed], at: datetime) -> Answer | None:
        if self._client is None:
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        done_at = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = msgspec.json.encode([
            {"message_id": owed.message_id, "status": owed.reported.value,
             "error_code": owed.error_code, "done_at": done_at}
            for owed in batch
        ])
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        async with self._client.post(self._url, data=body, headers=headers) as response:
            if response.status == 200:
                return Answer.ACKNOWLEDGED
            snippet = (await response.text())[:SNIPPET_CHARS]
        if response.status == 400:
            log.error("%d receipt(s) refused, dropped: 400 %s", len(batch), snippet)
            return Answer.REFUSED
        log.warning("%d receipt(s) not taken: %d %s", len(batch), response.status, snippet)
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def create_simulator_app(state: SimulatorState) -> Litestar:
    @post("/send", status_code=200, operation_id="send")
    async def send(data: JSONBody[SendRequest]) -> Response[dict[str, str]]:
        # Taken when it arrives, answered after the latency: a receipt due sooner
        # reaches the gateway before this answer does, as it can from an operator.
        answer = state.take(data, time.monotonic())
        if state.latency_ms:
            await asyncio.sleep(state.latency_ms / 1000)
        return answer

    @get("/stats", operation_id="stats")
    async def stats() -> dict[str, Any]:
        return state.stats()

    @get("/references", operation_id="references")
    async def references() -> dict[str, list[str]]:
        return {"accepted": sorted(state.message_ids)}

    @get("/receipts", operation_id="receipts")
    async def receipts() -> dict[str, object]:
        """What it reported and the gateway acknowledged, and what it never will."""
        return state.reporter.tally.listing()

    @post("/control", status_code=200, operation_id="control")
    async def control(data: JSONBody[ControlRequest]) -> Response[dict[str, Any]]:
        fail_rate = state.fail_rate if data.fail_rate is None else data.fail_rate
        latency_ms = state.latency_ms if data.latency_ms is None else data.latency_ms
        try:
            Behaviour(fail_rate=fail_rate, latency_ms=latency_ms)
        except BehaviourError as exc:
            return Response({"error": str(exc)}, status_code=400)
        state.fail_rate, state.latency_ms = fail_rate, latency_ms
        if data.reject_prefix is not None:
            state.reject_prefix = data.reject_prefix
        return Response(state.settings(), status_code=200)

    return Litestar(route_handlers=[send, stats, references, receipts, control],
                    logging_config=None,
                    openapi_config=None)


def _server(state: SimulatorState) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(
        create_simulator_app(state), log_level="warning", access_log=False, lifespan="off",
        timeout_graceful_shutdown=1, log_config=None,  # the process's logging, not uvicorn's
    ))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets
    # that say they are TCP, and with Nagle on, each answer waits ~40 ms for the
    # client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


async def run_simulator(
    name: str,
    host: str = "127.0.0.1",
    port: int = 9001,
    fail_rate: float = 0.0,
    latency_ms: float = 0.0,
    reject_prefix: str = "",
    *,
    seed: int | None = None,
    receipt_url: str | None = None,
    receipt_token: str = "",
    receipts: str | None = None,
    receipt_delay_ms: float = 0.0,
) -> None:
    """Serve one simulated operator until SIGINT/SIGTERM.

    Prints `operator-sim NAME listening on http://HOST:PORT` once it accepts
    connections, with the real port when `port` is 0.
    """
    state = SimulatorState(name, fail_rate, latency_ms, reject_prefix, seed,
                           receipt_url=receipt_url, receipt_token=receipt_token,
                           receipts=receipts, receipt_delay_ms=receipt_delay_ms)
    sock = _bind(host, port)
    try:
        server = _server(state)
        serving = await _serve(server, sock)
        print(f"operator-sim {name} listening on http://{host}:{sock.getsockname()[1]}",
              flush=True)
        await serving
    finally:
        await state.close()
        sock.close()


@asynccontextmanager
async def running_simulator(
    state: SimulatorState, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve `state` in this event loop on a free port; yields the base URL."""
    sock = _bind(host, 0)
    try:
        server = _server(state)
        serving = await _serve(server, sock)
        try:
            yield f"http://{host}:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            await serving
    finally:
        await state.close()
        sock.close()


async def _serve(server: uvicorn.Server, sock: socket.socket) -> asyncio.Task[None]:
    """Start `server` on `sock`; return its task once it accepts connections."""
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn has no event for "started", only this flag.
    while not server.started:
        if serving.done():
            await serving
            raise RuntimeError("the operator simulator did not start")
        await asyncio.sleep(0.01)
    return serving


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="HTTP operator simulator")
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--reject-prefix", default="")
    add_receipt_arguments(parser)
    args = parser.parse_args(argv)
    try:
        receipts = receipt_options(args)
        Behaviour(fail_rate=args.fail_rate, latency_ms=args.latency_ms,
                  receipts=args.receipts, receipt_delay_ms=args.receipt_delay_ms)
    except ValueError as exc:
        parser.error(str(exc))
    with suppress(KeyboardInterrupt):
        asyncio.run(run_simulator(args.name, args.host, args.port, args.fail_rate,
                                  args.latency_ms, args.reject_prefix, **receipts))


if __name__ == "__main__":
    main()
