"""The registry over HTTP, for processes without the API."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import start_http_server


class MetricsHttpServer:
    """`registry` over HTTP (any path, `/metrics` included) on a daemon thread."""

    def __init__(self, port: int, host: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY):
        self.host = host
        self.port = port
        self._registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; raises OSError when the port cannot be bound."""
        self._server, self._thread = start_http_server(
            self.port, addr=self.host, registry=self._registry
        )
        self.port = int(self._server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
