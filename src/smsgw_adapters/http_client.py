"""A lean HTTP/1.1 client for one kind of call: POST a small body, read the status and
the answer's first bytes, keep the connection for the next call to the same origin.

Why not aiohttp, which the operators' HTTP calls use: a webhook attempt through
aiohttp's ClientSession took about 180 µs of CPU, this client 35 µs, on the same
receiver (the bench's webhook sink, 128 in flight; see docs/webhooks.md), and
webhook delivery is one request per event. What it leaves out is what a webhook
never needs: redirects, cookies, proxies, compression, streaming bodies.

What it keeps of HTTP/1.1 (the response is parsed by httptools, uvicorn's C
parser): keep-alive per origin (scheme, host, port), the answer's end by its
length, chunks or the connection's close, `Connection: close`, and TLS with the
certificate checked against the host name. The caller bounds every call with its
own deadline; a call cancelled or timed out closes its connection, so nothing of a
half-read answer is ever mistaken for the next one's.

Addresses come from the caller's `resolve` for every new connection (the webhook
guard checks each, and a second lookup that could answer otherwise is never made).
A connection idle for `keepalive_s` is not used again (before the common 5 s of a
server's own idle timeout would cut it under the next request) and is closed
within a second after, traffic or not; a request on a kept connection that dies
before any answer byte is sent once more on a new one (the server may have
closed it just then), which a webhook, delivered at least once under the same
id, allows. An answer with a length or chunks that stops short is an error; one
without either ends with its connection, as HTTP/1.1 says.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlsplit

import httptools

Resolve = Callable[[str, int], Awaitable[Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address]]]
# Characters that stand as they are in a request target (RFC 3986's unreserved and
# reserved ones, and % for escapes already made); anything else is escaped.
_TARGET_SAFE = "/:@!$&'()*+,;=-._~%?"
_SWEEP_EVERY_S = 1.0


class HttpError(OSError):
    """The call did not get an answer: no connection, or one that broke or spoke
    something that is not HTTP/1.1. Its text says which, in one line."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    first_bytes: bytes  # at most the `keep` the call asked for


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str  # as in the URL (lower case; an IPv6 literal without brackets)
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@functools.lru_cache(maxsize=1 << 14)  # the same few URLs, over and over
def origin_and_target(url: str) -> tuple[Origin, str]:
    """Where `url` is, and the request target to send there (path and query; the
    fragment is the client's alone). ValueError for what is not an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:80]}")
    port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    if not host.isascii():
        host = host.encode("idna").decode()
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Origin(parts.scheme, host, port), quote(target, safe=_TARGET_SAFE)


class _Connection(asyncio.Protocol):
    """One connection: at most one call on it at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Answer] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._status = 0
        self._body = bytearray()
        self._keep = 0
        self._complete = False
        self._keep_alive = False  # what the answer's headers said (httptools knows it then)
        self._framed = False  # the answer says where it ends (a length, or chunks)
        self.answered = False  # a byte of the current call's answer has come

    # ------------------------------------------------------------------ a call

    def call(self, request: bytes, keep: int) -> asyncio.Future[Answer]:
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._status, self._body, self._keep = 0, bytearray(), keep
        self._complete = self._keep_alive = self._framed = self.answered = False
        self.transport.write(request)
        return self._waiter

    @property
    def reusable(self) -> bool:
        """The last call's answer was read to its end on a connection both sides keep."""
        return not self.closed and self._complete and self._keep_alive

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()  # no goodbye owed to a half-read answer

    # ------------------------------------------------------------------ asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's or uvloop's: both write and abort, neither subclasses the other.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._parser is None:
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HttpError("the endpoint switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"not an HTTP/1.1 answer: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._status and not self._complete and not self._framed:
            self._done()  # an answer that ends with its connection: this is its end
        elif self._status and not self._complete:
            self._fail(HttpError("the connection closed in the middle of the answer"))
        else:
            reason = f": {exc}" if exc else ""
            self._fail(HttpError(f"the connection closed before an answer{reason}"))

    # ------------------------------------------------------------------ httptools

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        room = self._keep - len(self._body)
        if room > 0:
            self._body += body[:room]
        if len(self._body) >= self._keep:
            self._done()  # the rest is not read; the connection goes (not reusable)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the final one follows.
            self._status, self._body = 0, bytearray()
            self._keep_alive = self._framed = False
            return
        self._complete = True
        self._done()

    def _done(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self._status, bytes(self._body)))

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()


class HttpClient:
    """Keep-alive connections per origin; `post` one call at a time on each. Made
    anywhere, used in one event loop; `close()` it at the end."""

    def __init__(self, resolve: Resolve, *, keepalive_s: float = 4.0,
                 max_idle: int = 256, ssl_context: ssl.SSLContext | None = None) -> None:
        self._resolve = resolve
        self._keepalive_s = keepalive_s
        self._max_idle = max_idle
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._ticking: asyncio.TimerHandle | None = None  # the sweep, while any is idle
        self._closed = False

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, *,
                   keep: int, content_type: str = "application/json") -> Answer:
        """POST `body` to `url` with `headers`; the answer's status and first `keep`
        bytes. HttpError when there is no answer; ValueError for a URL that is not
        http(s). Bound it with a deadline: it has none of its own."""
        origin, target = origin_and_target(url)
        lines = [f"POST {target} HTTP/1.1", f"host: {origin.host_header}",
                 f"content-type: {content_type}", f"content-length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        conn = self._kept(origin)
        if conn is not None:
            try:
                return await self._call(origin, conn, request, keep)
            except HttpError:
                if conn.answered:
                    raise
                # Closed by the server as it was reused: once more, on a new one.
        return await self._call(origin, await self._connect(origin), request, keep)

    async def close(self) -> None:
        """Close every kept connection; a call still in flight closes its own after."""
        self._closed = True
        if self._ticking is not None:
            self._ticking.cancel()
            self._ticking = None
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0

    async def _call(self, origin: Origin, conn: _Connection, request: bytes,
                    keep: int) -> Answer:
        try:
            answer = await conn.call(request, keep)
        except BaseException:  # cancelled, timed out, broken: never reused
            conn.close()
            raise
        if conn.reusable and not self._closed:
            self._keep_idle(origin, conn)
        else:
            conn.close()
        return answer

    async def _connect(self, origin: Origin) -> _Connection:
        addresses = await self._resolve(origin.host, origin.port)
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {}
        if origin.scheme == "https":
            tls = {"ssl": self._ssl or _default_context(), "server_hostname": origin.host}
        failures: list[str] = []
        for address in addresses:
            try:
                _, conn = await loop.create_connection(
                    _Connection, str(address), origin.port, **tls)
            except (OSError, ssl.SSLError) as exc:
                failures.append(f"{address}: {exc}")
                continue
            return conn
        raise HttpError(f"cannot connect to {origin.host}:{origin.port} ("
                        + "; ".join(failures or ["no address"]) + ")")

    def _kept(self, origin: Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        now = time.monotonic()
        while conns:
            conn = conns.pop()  # the one used last: the others may expire unused
            self._idle_count -= 1
            if not conn.closed and now - conn.idle_since < self._keepalive_s:
                return conn
            conn.close()
        return None

    def _keep_idle(self, origin: Origin, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(origin, []).append(conn)
        self._idle_count += 1
        if self._idle_count > self._max_idle:
            self._sweep()
        if self._ticking is None:
            self._ticking = asyncio.get_running_loop().call_later(_SWEEP_EVERY_S, self._tick)

    def _tick(self) -> None:
        """Every second while connections are kept: close those idle too long, so none
        outlives keepalive_s by more than a second, traffic or not."""
        self._ticking = None
        self._sweep()
        if self._idle_count and not self._closed:
            self._ticking = asyncio.get_running_loop().call_later(_SWEEP_EVERY_S, self._tick)

    def _sweep(self) -> None:
        """Close connections idle past keepalive_s, and the oldest over max_idle."""
        now = time.monotonic()
        kept: list[tuple[float, Origin, _Connection]] = []
        for origin, conns in self._idle.items():
            for conn in conns:
                if conn.closed or now - conn.idle_since >= self._keepalive_s:
                    conn.close()
                else:
                    kept.append((conn.idle_since, origin, conn))
        kept.sort(key=lambda k: k[0])
        for _, _, conn in kept[: max(0, len(kept) - self._max_idle)]:
            conn.close()
        self._idle = {}
        for _, origin, conn in kept[max(0, len(kept) - self._max_idle):]:
            self._idle.setdefault(origin, []).append(conn)
        self._idle_count = min(len(kept), self._max_idle)


@functools.cache
def _default_context() -> ssl.SSLContext:
    """The system's trust store, host names checked; made once (loading it is slow)."""
    return ssl.create_default_context()
