"""docs/architecture.md's module table is the one tools/module_table.py makes from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_module_table_is_up_to_date() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "module_table.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert check.returncode == 0, check.stderr


def test_every_module_has_a_sentence_for_the_table() -> None:
    listed = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "module_table.py")],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()[2:]
    assert len(listed) > 50
    assert all(not line.endswith("|  |") for line in listed), "a module without a docstring"
