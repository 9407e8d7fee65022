"""Starting the gateway's commands and stopping them, whatever happened in between."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: where the processes run


def smsgw(*args: str) -> list[str]:
    """The argv of `smsgw ARGS…` with this interpreter (the checkout's virtualenv)."""
    return [sys.executable, "-m", "smsgw_app.cli", *args]


def spawn(argv: list[str], env: dict[str, str], out: Path, err: Path | None = None
          ) -> subprocess.Popen[bytes]:
    """Start `argv` in ROOT, its stdout appended to `out` and its stderr to `err` (or `out`).

    In a session of its own, so a Ctrl-C meant for the harness is not the process's:
    the harness stops it, in order.
    """
    with open(out, "ab") as stdout:
        if err is None:
            return subprocess.Popen(argv, stdout=stdout, stderr=subprocess.STDOUT, env=env,
                                    cwd=ROOT, start_new_session=True)
        with open(err, "ab") as stderr:
            return subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env, cwd=ROOT,
                                    start_new_session=True)


def stop(processes: Iterable[subprocess.Popen[bytes]], grace_s: float) -> None:
    """SIGTERM to every one still running, then SIGKILL to any not gone within `grace_s`."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
