"""The webhook settings: read from the environment, and refused in one line naming the
variable (a setting of a kind the reader had no rule for once crashed the CLI)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from smsgw_app.config import ConfigError, Settings
from smsgw_core.webhooks import RETRY_DELAYS

KEY = base64.b64encode(bytes(range(32))).decode()


def test_every_webhook_setting_has_a_default_and_is_read_from_the_environment() -> None:
    default = Settings.from_env({})
    assert default.webhook_retry_s == tuple(d.total_seconds() for d in RETRY_DELAYS)
    assert (default.webhook_allow_http, default.webhook_allow_private) == (False, False)
    assert (default.webhook_key, default.webhook_timeout_s) == ("", 10.0)
    settings = Settings.from_env({
        "SMSGW_WEBHOOK_TIMEOUT_S": "2.5", "SMSGW_WEBHOOK_ALLOW_HTTP": "1",
        "SMSGW_WEBHOOK_ALLOW_PRIVATE": "true", "SMSGW_WEBHOOK_KEY": f"{KEY},{KEY}",
        "SMSGW_WEBHOOK_KEY_FILE": "/var/lib/smsgw/webhook.key",
        "SMSGW_WEBHOOK_RETRY_S": "0.5,1,60", "SMSGW_WEBHOOK_CONCURRENCY": "8",
        "SMSGW_WEBHOOK_PER_CUSTOMER": "2",
    })
    assert settings.webhook_timeout_s == 2.5
    assert settings.webhook_allow_http and settings.webhook_allow_private
    assert settings.webhook_key == f"{KEY},{KEY}"
    assert settings.webhook_key_file == "/var/lib/smsgw/webhook.key"
    assert settings.webhook_retry_s == (0.5, 1.0, 60.0)
    assert (settings.webhook_concurrency, settings.webhook_per_customer) == (8, 2)


@pytest.mark.parametrize(("variable", "value"), [
    ("SMSGW_WEBHOOK_KEY", "c2hvcnQ="),  # 5 bytes
    ("SMSGW_WEBHOOK_KEY", "not base64 at all!"),
    ("SMSGW_WEBHOOK_KEY", ""),
    ("SMSGW_WEBHOOK_KEY_FILE", ""),
    ("SMSGW_WEBHOOK_RETRY_S", "5,x"),
    ("SMSGW_WEBHOOK_RETRY_S", "0"),
    ("SMSGW_WEBHOOK_RETRY_S", "-1"),
    ("SMSGW_WEBHOOK_RETRY_S", ",".join(["1"] * 51)),
    ("SMSGW_WEBHOOK_TIMEOUT_S", "0"),
    ("SMSGW_WEBHOOK_CONCURRENCY", "0"),
    ("SMSGW_WEBHOOK_ALLOW_HTTP", "maybe"),
])
def test_a_bad_webhook_setting_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable) as refused:
        Settings.from_env({variable: value})
    assert "\n" not in str(refused.value)
    if variable == "SMSGW_WEBHOOK_KEY" and value:
        assert value not in str(refused.value)  # a key is never echoed


def test_the_cli_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "smsgw_app.cli", "migrate"], capture_output=True, text=True,
        env={"SMSGW_WEBHOOK_RETRY_S": "soon", "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
        timeout=60)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "SMSGW_WEBHOOK_RETRY_S" in run.stderr
