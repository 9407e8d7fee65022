"""A lean HTTP/1.1 keep-alive client: one request at a time per connection.

The load generator shares its machine with the server it measures, so every
microsecond it spends per request is taken from the server. This client writes
a pre-built request and reads the status line, the Content-Length (or chunked)
body and nothing else: at 1,000 req/s a third of aiohttp's CPU per request and a
twentieth of httpx's (figures in docs/operations.md, "Commands").
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Protocol, cast
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024


class RequestError(Exception):
    """A request that got no complete HTTP answer; `kind` names the failure for the report."""

    kind = "error"


class ConnectFailed(RequestError):
    kind = "connect"


class ConnectionClosed(RequestError):
    kind = "closed"


class RequestTimeout(RequestError):
    kind = "timeout"


class BadResponse(RequestError):
    kind = "protocol"


@dataclass(frozen=True, slots=True)
class Target:
    """Where one connection goes: host, port, TLS and the request line's path."""

    url: str
    host: str
    port: int
    tls: bool
    path: str

    @classmethod
    def parse(cls, url: str, route: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url {url!r}: expected http://HOST[:PORT]")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"--url {url!r}: bad port") from None
        return cls(url, parts.hostname, port, parts.scheme == "https",
                   parts.path.rstrip("/") + route)

    def request_head(self, method: str = "POST") -> bytes:
        """The request line and fixed headers; Content-Length and the body follow."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return (f"{method} {self.path} HTTP/1.1\r\nHost: {host}:{self.port}\r\n"
                "Content-Type: application/json\r\n").encode("ascii")

    async def connect(self, within: float, listener: Listener) -> HttpConnection:
        """A new connection, or ConnectFailed after `within` seconds."""
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if self.tls else None
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: HttpConnection(loop, listener), self.host,
                                       self.port, ssl=context),
                within,
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        return connection


class Listener(Protocol):
    """Told how each request of a connection ended."""

    def answered(self, status: int, body: bytes) -> None: ...

    def failed(self, error: RequestError) -> None: ...


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time, answers by callback.

    Callbacks rather than futures: the answer is handled (and the next request
    written) inside the read callback, with no task switch or extra event-loop
    turn per request.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, listener: Listener) -> None:
        self._loop = loop
        self._listener = listener
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._status = 0
        self._body_at = -1  # where the body starts in the buffer, once the head is read
        self._length = -1  # Content-Length; CHUNKED; or UNTIL_CLOSE
        self._keep_alive = True
        self.busy = False
        self.closed = False
        self.sent_at = 0.0  # time.monotonic() when the request in flight was written

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's or uvloop's: both write and abort, neither subclasses the other
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy and self._length == UNTIL_CLOSE and self._body_at >= 0:
            self._finish(bytes(self._buffer[self._body_at:]), 0)
            return
        self._fail(ConnectionClosed(str(exc) if exc else "closed by the server"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self.busy:
            self.abort(BadResponse("data without a request"))
            return
        try:
            self._parse()
        except (ValueError, IndexError) as exc:
            self.abort(BadResponse(f"malformed response: {exc}"))

    # the client's side

    def send(self, data: bytes) -> None:
        """Write a request; its answer goes to the listener."""
        if self.closed or self._transport is None or self.busy:
            raise ConnectionClosed("connection not usable")
        self.busy = True
        self.sent_at = time.monotonic()
        self._transport.write(data)

    def abort(self, error: RequestError) -> None:
        """Fail the request in flight with `error` and drop the connection."""
        self.closed = True
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # parsing

    def _parse(self) -> None:
        buffer = self._buffer
        if self._body_at < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise ValueError("head too long")
                return
            head = bytes(buffer[:end]).lower()
            if not head.startswith(b"http/1."):
                raise ValueError("not HTTP/1.x")
            self._status = int(head[9:12])
            self._keep_alive = b"\r\nconnection: close" not in head
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                self._length = int(head[at + 17:stop if stop >= 0 else end])
            elif b"\r\ntransfer-encoding:" in head and b"chunked" in head:
                self._length = CHUNKED
            elif self._status in (204, 304) or self._status < 200:
                self._length = 0
            else:
                self._length = UNTIL_CLOSE
                self._keep_alive = False
            self._body_at = end + 4
            if self._status < 200:  # an interim answer (100 Continue): the real one follows
                del buffer[:self._body_at]
                self._body_at = -1
                self._parse()
                return
        if self._length >= 0:
            stop = self._body_at + self._length
            if len(buffer) >= stop:
                self._finish(bytes(buffer[self._body_at:stop]), stop)
        elif self._length == CHUNKED:
            self._parse_chunked()

    def _parse_chunked(self) -> None:
        # Re-read from the body's start each time: answers here are small.
        buffer, at, body = self._buffer, self._body_at, bytearray()
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                return
            size = int(bytes(buffer[at:line_end]).split(b";", 1)[0], 16)
            if size == 0:  # the last chunk, then trailers, then an empty line
                trailers_end = buffer.find(b"\r\n\r\n", line_end)
                if trailers_end >= 0:
                    self._finish(bytes(body), trailers_end + 4)
                return
            chunk_end = line_end + 2 + size
            if len(buffer) < chunk_end + 2:
                return
            body += buffer[line_end + 2:chunk_end]
            at = chunk_end + 2

    def _finish(self, body: bytes, consumed: int) -> None:
        del self._buffer[:consumed]
        self._body_at = -1
        self._length = -1
        self.busy = False
        if not self._keep_alive:
            self.close()
        self._listener.answered(self._status, body)

    def _fail(self, error: RequestError) -> None:
        if self.busy:
            self.busy = False
            self._listener.failed(error)


CHUNKED = -2
UNTIL_CLOSE = -3
