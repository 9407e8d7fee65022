"""The webhooks scenario's receiver: counts deliveries, answers 200, verifies nothing.

    python benchmarks/bench/webhook_sink.py --ports 41001,41002 [--keep-every 100]

The tests' receiver (tests/peers/webhook_receiver.py) checks every signature with
the reference verifier on aiohttp's server and keeps every request: right for a
test, but on a 2-core box its CPU per request would be taken from the gateway it
measures. This one is a bare asyncio protocol (uvloop when installed) that parses
just enough HTTP/1.1 (keep-alive, Content-Length bodies) to count a delivery and
answer `200` with no body; it keeps one request in `--keep-every` whole (headers,
body, arrival time, path), up to `--keep`, which the bench verifies afterwards
with `standardwebhooks` against the secrets the gateway gave it (so signatures
are still checked, on a sample, outside the measurement).

It listens on several ports of 127.0.0.1 (one per `--ports` entry), so that the
customers' endpoints are not all one host:port to the sender: a connection cap
per host (aiohttp's limit_per_host) would otherwise be shared by every customer.

- `POST /<anything>`: a delivery: counted (and its `webhook-id`, to tell
  duplicates), answered `200`.
- `GET /_stats`: {"requests", "unique", "duplicates", "missing_headers", "first_at",
  "last_at", "kept"} (times in Unix seconds of arrival).
- `GET /_sample`: {"requests": [{"path", "headers": {webhook-id, webhook-timestamp,
  webhook-signature}, "body", "at"}, ...]}.
- `GET /_health`: 200.

It imports nothing of the project's and does no disk I/O per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any

SIGNED = ("webhook-id", "webhook-timestamp", "webhook-signature")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
MAX_HEAD = 16_384
MAX_BODY = 1_048_576


class Counts:
    """What every port received, together."""

    def __init__(self, keep_every: int, keep: int) -> None:
        self.keep_every, self.keep = keep_every, keep
        self.requests = 0
        self.missing_headers = 0
        self.ids: set[str] = set()
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.kept: list[dict[str, Any]] = []

    def delivery(self, path: str, headers: dict[str, str], body: bytes) -> None:
        now = time.time()
        self.requests += 1
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        webhook_id = headers.get("webhook-id")
        if not all(headers.get(name) for name in SIGNED) or webhook_id is None:
            self.missing_headers += 1
        else:
            self.ids.add(webhook_id)
        if self.requests % self.keep_every == 1 % self.keep_every and len(self.kept) < self.keep:
            self.kept.append({"path": path, "at": now, "body": body.decode(errors="replace"),
                              "headers": {name: headers.get(name, "") for name in SIGNED}})

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "unique": len(self.ids),
                "duplicates": self.requests - self.missing_headers - len(self.ids),
                "missing_headers": self.missing_headers, "first_at": self.first_at,
                "last_at": self.last_at, "kept": len(self.kept)}


class Sink(asyncio.Protocol):
    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._answer(400, b"", close=True)
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if len(parts) != 3 or not 0 <= length <= MAX_BODY \
                    or "chunked" in headers.get("transfer-encoding", ""):
                self._answer(400, b"", close=True)
                return
            if len(self.buffer) < end + 4 + length:
                return  # the rest of the body is still to come
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            self._request(parts[0], parts[1], headers, body)
            if headers.get("connection", "").lower() == "close" and self.transport is not None:
                self.transport.close()
                self.transport = None

    def _request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        if method == "POST":
            self.counts.delivery(path, headers, body)
            assert self.transport is not None
            self.transport.write(OK)
        elif method == "GET" and path == "/_stats":
            self._answer(200, json.dumps(self.counts.stats()).encode())
        elif method == "GET" and path == "/_sample":
            self._answer(200, json.dumps({"requests": self.counts.kept}).encode())
        elif method == "GET" and path == "/_health":
            self._answer(200, b"{}")
        else:
            self._answer(404, b"")

    def _answer(self, status: int, body: bytes, close: bool = False) -> None:
        if self.transport is None:
            return
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        if close:
            self.transport.close()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(ports: list[int], keep_every: int, keep: int) -> None:
    loop = asyncio.get_running_loop()
    counts = Counts(keep_every, keep)
    servers = [await loop.create_server(lambda: Sink(counts), "127.0.0.1", port)
               for port in ports]
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound = [s.sockets[0].getsockname()[1] for s in servers]
    print("listening on " + " ".join(f"http://127.0.0.1:{p}" for p in bound), flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", required=True,
                        type=lambda s: [int(p) for p in s.split(",") if p.strip()],
                        help="comma-separated ports of 127.0.0.1 (0: any free one)")
    parser.add_argument("--keep-every", type=int, default=100,
                        help="keep one request in this many whole (default %(default)s)")
    parser.add_argument("--keep", type=int, default=2000,
                        help="keep at most this many (default %(default)s)")
    args = parser.parse_args()
    if args.keep_every < 1:
        parser.error("--keep-every is at least 1")
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.ports, args.keep_every, args.keep))
    else:
        uvloop.run(serve(args.ports, args.keep_every, args.keep))


if __name__ == "__main__":
    main()
