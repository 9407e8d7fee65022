"""What a bench run records besides its figures: the machine, the commit, the settings."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.bench.services import Services
from benchmarks.harness.processes import ROOT


def machine_info(services: Services) -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
        "kernel": platform.release(), "loadavg_at_start": os.getloadavg(),
    }
    with contextlib.suppress(OSError):
        meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0]
        info["memory_gib"] = round(int(meminfo.split()[1]) / 2**20, 1)
    try:
        row = services.sql("SELECT VERSION(), @@innodb_flush_log_at_trx_commit, "
                           "@@innodb_buffer_pool_size, @@sync_binlog, @@log_bin",
                           database=None)[0]
        info.update(mariadb_version=row[0], innodb_flush_log_at_trx_commit=int(row[1]),
                    innodb_buffer_pool_mib=int(row[2]) // 2**20, sync_binlog=int(row[3]),
                    log_bin=bool(row[4]))
    except Exception as exc:
        info["mariadb_error"] = str(exc)
    info["rabbitmq_version"] = services.rabbitmq_version()
    return info


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "--no-optional-locks", *args], cwd=ROOT,
                              capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def gateway_settings(env: dict[str, str]) -> dict[str, Any]:
    """The settings that shape the figures, as the gateway's processes read them."""
    from smsgw_app.config import Settings

    settings = Settings.from_env(env)
    names = ("workers", "express_workers", "prefetch", "relay_express_workers",
             "relay_normal_workers", "relay_batch", "accept_batch", "max_backlog",
             "operator_retries", "log_level")
    return {f"SMSGW_{name.upper()}": getattr(settings, name) for name in names
            if hasattr(settings, name)}


def command_line(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    if os.environ.get("MAKELEVEL") and not args:
        return "make bench"
    return " ".join([".venv/bin/python benchmarks/run.py", *args])
