"""A TCP forwarder the tests can cut: between a process and its database or broker."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.integration.harness import free_port


class Forwarder:
    """127.0.0.1:port -> upstream, byte for byte; can refuse new connections for a while."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._stop: threading.Event | None = None
        self._acceptor: threading.Thread | None = None
        self._sockets: list[socket.socket] = []

    def accept(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.1)
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, args=(listener, self._stop),
                                          daemon=True)
        self._acceptor.start()

    def refuse(self) -> None:
        """Close the listening socket: live connections go on, new ones are refused."""
        if self._stop is not None and self._acceptor is not None:
            self._stop.set()
            self._acceptor.join(5)
            self._stop = self._acceptor = None

    def close(self) -> None:
        self.refuse()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        with listener:
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                try:
                    server = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    client.close()
                    continue
                server.settimeout(None)
                self._sockets += [client, server]
                for src, dst in ((client, server), (server, client)):
                    threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
