"""The embedding example runs on its own and tells the story it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embed_core.py"


def test_embed_core_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # 200 topped up with one key = 100; charged 3 (express OTP) + 4 (2 recipients x 2
    # segments); one recipient refused by operator A for good and refunded its share of 2.
    assert "topped up: balance 100" in lines
    assert "relayed 2 message(s)" in lines
    assert sum("failed 1" in line for line in lines) == 1
    assert "balance 95" in lines
    assert sum(" refund " in line for line in lines) == 1
    assert lines[-1] == "embed_core OK: balance 95, 3 messages"
    assert result.stderr == ""
