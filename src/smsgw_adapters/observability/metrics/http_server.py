"""The registry over HTTP, for processes without the API.

With a token, every request must carry `Authorization: Bearer <token>`, else
401: the figures (money moved, operators' health) are not for anyone who
reaches the port.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from smsgw_core.keys import bearer_token_matches

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class MetricsHttpServer:
    """`registry` over HTTP (any path, `/metrics` included) on a daemon thread."""

    def __init__(self, port: int, host: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY,
                 token: str = "") -> None:
        self.host = host
        self.port = port
        self._registry = registry
        self._token = token
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; raises OSError when the port cannot be bound."""
        app = make_wsgi_app(self._registry)
        self._server = make_server(self.host, self.port, _guarded(app, self._token),
                                   ThreadingWSGIServer, handler_class=_Quiet)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="metrics-http")
        self._thread.start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _guarded(app: WsgiApp, token: str) -> WsgiApp:
    if not token:
        return app

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if bearer_token_matches(environ.get("HTTP_AUTHORIZATION"), token):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "application/json"),
                                            ("WWW-Authenticate", "Bearer")])
        return [b'{"message":"the metrics take a Bearer token (SMSGW_METRICS_TOKEN)"}']

    return guarded


class _Quiet(WSGIRequestHandler):
    """No line on stderr per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
