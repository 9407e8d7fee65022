"""The `smsgw` command: a bad setting is one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import SMSGW, free_port

pytestmark = pytest.mark.slow

CONSOLE_SCRIPT = Path(sys.executable).parent / "smsgw"
ORIGINAL_TABLES = {"user_balances", "user_transactions", "sms_status", "outbox_events"}


def _run(args: list[str], tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update({"SMSGW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
                "SMSGW_OPERATORS": "A=sim://,B=sim://", "SMSGW_BROKER_URL": "memory://",
                **settings})
    try:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as exc:  # a setting we expected refused was accepted
        raise AssertionError(f"{args} did not exit: {exc.stderr!r}") from None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SMSGW_PRICE_NORMAL", "abc"),
        ("SMSGW_PRICE_EXPRESS", "-1"),
        ("SMSGW_OPERATORS", "A"),
        ("SMSGW_OPERATORS", "A=ftp://x"),
        ("SMSGW_OPERATORS", "A=sim://?fail_rate=2"),
        ("SMSGW_BROKER_URL", "bogus://"),
        ("SMSGW_CUSTOMER_RATE", "200/minute"),
        ("SMSGW_METRICS_TOKEN", "short"),
        ("SMSGW_CORS_ORIGINS", "https://app.example.com/path"),
        ("SMSGW_DATABASE_URL", "postgres://x"),
        # {tmp} is this test's directory: nothing outside it is created if the check fails
        ("SMSGW_DATABASE_URL", "sqlite+aiosqlite:///{tmp}/nonexistent/dir/x.db"),
        ("SMSGW_DATABASE_URL", "sqlite+aiosqlite:///{tmp}/a-file/x.db"),
    ],
)
def test_invalid_configuration_is_one_line_and_exit_2(
    tmp_path: Path, variable: str, value: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    value = value.format(tmp=tmp_path)

    result = _run([*SMSGW, "serve", "--port", str(free_port())], tmp_path, **{variable: value})

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("smsgw: ")
    assert variable in lines[0]
    assert not (tmp_path / "nonexistent").exists()


def test_migrate_creates_the_original_tables(tmp_path: Path) -> None:
    db_path = tmp_path / "fresh.db"
    url = f"sqlite+aiosqlite:///{db_path}"

    first = _run([*SMSGW, "migrate"], tmp_path, SMSGW_DATABASE_URL=url)
    again = _run([*SMSGW, "migrate"], tmp_path, SMSGW_DATABASE_URL=url)

    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert "Traceback" not in first.stderr + again.stderr
    with sqlite3.connect(db_path) as conn:
        tables = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )}
    assert tables >= ORIGINAL_TABLES


def test_help_exits_0(tmp_path: Path) -> None:
    assert CONSOLE_SCRIPT.exists()
    result = _run([str(CONSOLE_SCRIPT), "--help"], tmp_path)

    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert "migrate" in result.stdout
