"""A password in SMSGW_DATABASE_URL or SMSGW_BROKER_URL never reaches the output:
a start-up failure is one line on stderr, exit 2, with the password as ***."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from smsgw_app.config import hide_password, mask_password
from tests.integration.harness import SMSGW, free_port

SECRET = "s3cr%40t-pw"  # percent-encoded '@': the driver sees "s3cr@t-pw"


@pytest.mark.parametrize(("url", "masked"), [
    ("mysql+asyncmy://app:pw@db:3306/smsgw", "mysql+asyncmy://app:***@db:3306/smsgw"),
    ("amqp://guest:p%40ss@[::1]:5672/vhost?x=1", "amqp://guest:***@[::1]:5672/vhost?x=1"),
    ("mysql+asyncmy://app@db/smsgw", "mysql+asyncmy://app@db/smsgw"),
    ("sqlite+aiosqlite:///./a:b@c.db", "sqlite+aiosqlite:///./a:b@c.db"),
    ("memory://", "memory://"),
])
def test_mask_password(url: str, masked: str) -> None:
    assert mask_password(url) == masked


def test_hide_password_also_hides_the_decoded_password() -> None:
    url = f"amqp://guest:{SECRET}@h/"
    assert hide_password("login s3cr@t-pw refused (s3cr%40t-pw)", url) == "login *** refused (***)"


def _run(args: list[str], tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update({"SMSGW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
                "SMSGW_OPERATORS": "A=sim://", "SMSGW_BROKER_URL": "memory://", **settings})
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


def _closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


@pytest.mark.slow
@pytest.mark.parametrize(("command", "variable", "url"), [
    (["migrate"], "SMSGW_DATABASE_URL",
     f"mysql+asyncmy://root:{SECRET}@127.0.0.1:{_closed_port()}/smsgw"),
    (["seed", "--users", "1", "--balance", "1"], "SMSGW_DATABASE_URL",
     f"mysql+asyncmy://root:{SECRET}@127.0.0.1:{_closed_port()}/smsgw"),
    (["serve", "--port", "0"], "SMSGW_DATABASE_URL",
     f"mysql+asyncmy://root:{SECRET}@127.0.0.1:{_closed_port()}/smsgw"),
    (["serve", "--port", "0"], "SMSGW_DATABASE_URL",  # refused by the configuration check
     f"mysql+asyncmy://root:{SECRET}@127.0.0.1:{_closed_port()}/"),
    (["serve", "--port", "0"], "SMSGW_BROKER_URL",
     f"amqp://guest:{SECRET}@127.0.0.1:{_closed_port()}/"),
    (["serve", "--port", "0"], "SMSGW_BROKER_URL", f"http://guest:{SECRET}@127.0.0.1/"),
])
def test_a_start_up_failure_does_not_print_the_password(
    tmp_path: Path, command: list[str], variable: str, url: str
) -> None:
    result = _run([*SMSGW, *command], tmp_path, **{variable: url})

    assert result.returncode == 2, result.stderr
    output = result.stderr + result.stdout
    assert "Traceback" not in output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert ":***@" in lines[0]
    assert SECRET not in output
    assert "s3cr@t-pw" not in output
