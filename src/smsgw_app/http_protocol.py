"""uvicorn's httptools protocol with a deadline for reading requests and a connection cap.

uvicorn times out only idle keep-alive connections after a response: a client
that connects and sends nothing, or half a request, holds its connection (and
the request's task) forever, and nothing caps how many it may hold. Here:

- every request must arrive whole (headers and body) within the request timeout,
  counted from the connection opening or the request's first byte; otherwise the
  connection is closed. A handler waiting on the body then sees a disconnect,
  which the API logs as such, without a traceback (api/errors.py);
- a connection opened while `max_connections` are already open is answered 503
  (JSON, `Retry-After`, `Connection: close`) to its first request and closed.
  With the deadline above, no one can hold the cap for longer than it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("smsgw.http")

RETRY_AFTER_S = 1  # connections come and go quickly: a refused client may try again soon


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    request_timeout_s: float = 10.0
    max_connections: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        over_cap = len(self.connections) >= self.max_connections  # before adding this one
        super().connection_made(transport)
        if over_cap:
            self.app = _over_capacity  # this connection only: answer 503, then close
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else ""
            log.info("closing a connection whose request did not arrive within %g s",
                     self.request_timeout_s, extra={"client": client})
            self.transport.close()


def guarded_protocol(request_timeout_s: float, max_connections: int) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn.Config(http=...), with these limits."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "request_timeout_s": request_timeout_s, "max_connections": max_connections,
    })


_OVER_CAPACITY = json.dumps({
    "message": "connections: the server has as many open as it serves; retry shortly",
}).encode()


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    log.warning("refused a request: the connection cap is reached")
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_OVER_CAPACITY)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": _OVER_CAPACITY})
