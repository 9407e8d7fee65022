"""Real processes over real HTTP: each gateway is `smsgw serve` in a subprocess."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SMSGW = [sys.executable, "-m", "smsgw_app.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


@dataclass
class Gateway:
    """One `smsgw serve` process on its own SQLite file."""

    db_path: Path
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gateway:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*SMSGW, "serve", "--port", str(self.port)], env=self.env,
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_until(self._healthy, timeout=30)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"smsgw exited {self.process.returncode}:\n{self.logs()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no cleanup of any kind
        self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the database directly, to assert on what was (not) written."""
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, params).fetchall()

    def top_up(self, user_id: int, amount: int) -> None:
        with self.client() as c:
            r = c.post("/balance/add", json={"user_id": user_id, "balance": amount,
                                             "description": "test"})
            assert r.status_code == 200, r.text

    def wait_terminal(self, sms_identifier: str, user_id: int, timeout: float = 30) -> list[Any]:
        def done() -> list[Any] | None:
            with self.client() as c:
                rows = c.get("/sms/history", params={"user_id": user_id,
                                                     "sms_identifier": sms_identifier}).json()
            items = rows["items"]
            ok = items and all(r["status"] in ("done", "failed") for r in items)
            return items if ok else None
        return list(wait_until(done, timeout=timeout))


GatewayFactory = Callable[..., Gateway]
