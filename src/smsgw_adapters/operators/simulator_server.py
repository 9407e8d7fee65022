"""An HTTP operator simulator speaking the protocol in docs/operators.md.

For demos and fault tests: `fail_rate` of the sends are answered 503,
`latency_ms` delays every answer, numbers starting with `reject_prefix` are
refused with 422, and a resend of an accepted reference gets the same message
id without being counted again. `POST /control` changes the behaviour at run
time (take the operator "down" with `{"fail_rate": 1.0}`, back with 0.0),
`GET /stats` tells what it saw, and `GET /references` lists every reference it
accepted, each once (the chaos test compares them across operators, for sends
that reached two).

    python -m smsgw_adapters.operators.simulator_server --name A --port 9001
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Response, get, post
from litestar.params import JSONBody

from smsgw_adapters.operators.simulated import Behaviour, BehaviourError


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

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        Behaviour(fail_rate=self.fail_rate, latency_ms=self.latency_ms)  # raises BehaviourError

    def stats(self) -> dict[str, int]:
        return {"accepted": len(self.message_ids), "duplicates": self.duplicates,
                "failed": self.failed, "rejected": self.rejected}

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "fail_rate": self.fail_rate,
                "latency_ms": self.latency_ms, "reject_prefix": self.reject_prefix}


def create_simulator_app(state: SimulatorState) -> Litestar:
    @post("/send", status_code=200, operation_id="send")
    async def send(data: JSONBody[SendRequest]) -> Response[dict[str, str]]:
        if state.latency_ms:
            await asyncio.sleep(state.latency_ms / 1000)
        if state.reject_prefix and data.to.startswith(state.reject_prefix):
            state.rejected += 1
            return Response({"error": f"invalid number {data.to}"}, status_code=422)
        if state.random.random() < state.fail_rate:
            state.failed += 1
            return Response({"error": "simulated outage"}, status_code=503)
        if data.reference in state.message_ids:
            state.duplicates += 1
        else:
            state.message_ids[data.reference] = f"{state.name}-{uuid.uuid4().hex[:16]}"
        return Response({"message_id": state.message_ids[data.reference]}, status_code=200)

    @get("/stats", operation_id="stats")
    async def stats() -> dict[str, int]:
        return state.stats()

    @get("/references", operation_id="references")
    async def references() -> dict[str, list[str]]:
        return {"accepted": sorted(state.message_ids)}

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

    return Litestar(route_handlers=[send, stats, references, control], logging_config=None,
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
) -> None:
    """Serve one simulated operator until SIGINT/SIGTERM.

    Prints `operator-sim NAME listening on http://HOST:PORT` once it accepts
    connections, with the real port when `port` is 0.
    """
    state = SimulatorState(name, fail_rate, latency_ms, reject_prefix)
    sock = _bind(host, port)
    try:
        server = _server(state)
        serving = await _serve(server, sock)
        print(f"operator-sim {name} listening on http://{host}:{sock.getsockname()[1]}",
              flush=True)
        await serving
    finally:
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
    args = parser.parse_args(argv)
    with suppress(KeyboardInterrupt):
        asyncio.run(run_simulator(args.name, args.host, args.port, args.fail_rate,
                                  args.latency_ms, args.reject_prefix))


if __name__ == "__main__":
    main()
