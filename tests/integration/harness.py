"""Real processes over real HTTP.

A gateway runs in one of three modes, and the end-to-end tests run in each:
- embedded: `smsgw serve` on a SQLite file with the in-process bus;
- serve: `smsgw serve` on MariaDB + RabbitMQ;
- split: `smsgw api`, `smsgw relay` and `smsgw worker` as separate processes on
  MariaDB + RabbitMQ.
"""

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
from urllib.parse import urlsplit

import httpx
import pymysql

SMSGW = [sys.executable, "-m", "smsgw_app.cli"]
MODES = ("embedded", "serve", "split")


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
    """The processes of one gateway over one database."""

    mode: str
    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)  # stopped or killed on purpose

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return self.env["SMSGW_DATABASE_URL"]

    @property
    def log_path(self) -> Path:
        return self.workdir / "gateway.log"

    def commands(self) -> dict[str, list[str]]:
        if self.mode == "split":
            return {"api": ["api", "--port", str(self.port)], "relay": ["relay"],
                    "worker": ["worker"]}
        return {"serve": ["serve", "--port", str(self.port)]}

    def start(self, *only: str) -> Gateway:
        """Start every process of the mode (or just those named) and wait until ready."""
        for name, args in self.commands().items():
            if only and name not in only:
                continue
            log = self.log_path.open("ab")
            self.stopped.discard(name)
            self.processes[name] = subprocess.Popen(
                [*SMSGW, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, timeout=60)
        return self

    def check_alive(self) -> None:
        """Fail at once, with the logs, if a process died that no one stopped."""
        for name, process in self.processes.items():
            if name not in self.stopped and process.poll() is not None:
                raise AssertionError(f"{name} exited {process.returncode}:\n{self.logs()}")

    def _ready(self) -> bool:
        self.check_alive()
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, *only: str) -> None:
        """SIGTERM, as an orchestrator would; SIGKILL if it does not exit in time.

        Fails afterwards if a process had died before anyone stopped it.
        """
        died = [n for n, p in self.processes.items() if n not in self.stopped and p.poll()
                is not None]
        self.stopped.update(n for n in self.processes if not only or n in only)
        for name, process in self.processes.items():
            if (not only or name in only) and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            if not only or name in only:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if died:
            raise AssertionError(f"{', '.join(died)} had died unnoticed:\n{self.logs()}")

    def kill(self, *only: str) -> None:
        """SIGKILL: no cleanup of any kind."""
        self.stopped.update(n for n in self.processes if not only or n in only)
        for name, process in self.processes.items():
            if (not only or name in only) and process.poll() is None:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read (or, rarely, change) the database directly; `?` marks parameters."""
        if self.database_url.startswith("sqlite"):
            path = self.database_url.split(":///", 1)[1]
            with sqlite3.connect(path) as conn:
                return conn.execute(sql, params).fetchall()
        parts = urlsplit(self.database_url)
        conn = pymysql.connect(
            host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
            password=parts.password or "", database=parts.path.strip("/"), autocommit=True,
        )
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql.replace("?", "%s"), params)
                return [tuple(row) for row in cursor.fetchall()]
        finally:
            conn.close()

    def top_up(self, user_id: int, amount: int) -> None:
        with self.client() as c:
            r = c.post("/balance/add", json={"user_id": user_id, "balance": amount,
                                             "description": "test"})
            assert r.status_code == 200, r.text

    def wait_terminal(self, sms_identifier: str, user_id: int, timeout: float = 30) -> list[Any]:
        def done() -> list[Any] | None:
            self.check_alive()
            with self.client() as c:
                rows = c.get("/sms/history", params={"user_id": user_id,
                                                     "sms_identifier": sms_identifier}).json()
            items = rows["history"]
            ok = items and all(r["status"] in ("done", "failed") for r in items)
            return items if ok else None
        return list(wait_until(done, timeout=timeout))


GatewayFactory = Callable[..., Gateway]
