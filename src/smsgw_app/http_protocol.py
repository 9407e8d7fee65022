"""uvicorn's httptools protocol with a deadline for reading requests.

uvicorn times out only idle keep-alive connections after a response: a client
that connects and sends nothing, or half a request, holds its connection (and
the request's task) forever. Here every request must arrive whole (headers and
body) within the request timeout, counted from the connection opening or the
request's first byte; otherwise the connection is closed. A handler waiting on
the body then sees a disconnect, which the API logs as such, without a
traceback (api/errors.py). So no one holds a place under the connection cap
(uvicorn's `limit_concurrency`) for longer than the timeout.

Past that cap uvicorn answers 503 text/plain with no Retry-After; the API's
503s say when to retry, in JSON, so this one does too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

log = logging.getLogger("smsgw.http")

RETRY_AFTER_S = 1  # connections come and go quickly: a refused client may try again soon


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    request_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
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

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn's refusal past limit_concurrency, in the API's words.
        super()._start_asgi_task(cycle, _over_capacity if app is service_unavailable else app)

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


def guarded_protocol(request_timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn.Config(http=...), with this request timeout."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "request_timeout_s": request_timeout_s,
    })


_OVER_CAPACITY = json.dumps({
    "message": "connections: the server has as many open as it serves; retry shortly",
}).encode()


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_OVER_CAPACITY)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
        (b"connection", b"close"),  # the connection goes, and with it a place under the cap
    ]})
    await send({"type": "http.response.body", "body": _OVER_CAPACITY})
