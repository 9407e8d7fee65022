"""A scenario's processes, started and awaited, and what a scenario that cannot go on raises."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import processes

STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 60.0


class ScenarioError(Exception):
    """A scenario could not run; the message says why and where the logs are."""


@dataclass
class Processes:
    """The processes of one scenario; `stop()` ends them all, whatever happened."""

    logdir: Path
    scenario: str
    running: list[tuple[str, str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, group: str, argv: list[str], env: dict[str, str]
              ) -> subprocess.Popen[bytes]:
        stem = self.logdir / f"{self.scenario}.{name}"
        proc = processes.spawn(argv, env, Path(f"{stem}.out"), Path(f"{stem}.err"))
        self.running.append((name, group, proc))
        return proc

    def pids(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for _, group, proc in self.running:
            groups.setdefault(group, []).append(proc.pid)
        return groups

    def log(self, name: str) -> str:
        return f"{self.logdir / self.scenario}.{name}.err"

    def stop(self) -> None:
        processes.stop((proc for _, _, proc in self.running), STOP_GRACE_S)
        self.running.clear()


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, log: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ScenarioError(f"{what} exited with {proc.returncode} at start; see {log}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise ScenarioError(f"{what} not ready at {url} after {READY_TIMEOUT_S:.0f} s; see {log}")


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise ScenarioError(f"gave up waiting {timeout:.0f} s for {what}")
        time.sleep(0.5)
    return time.monotonic() - started


def tail(path: Path) -> str:
    """The last line of a log, cut to fit in an error message."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def get_json(url: str) -> Any:
    """A JSON answer of a peer's control API, or {"error": ...} when there is none."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError) as exc:
        return {"error": str(exc)}
