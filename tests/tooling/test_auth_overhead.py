"""benchmarks/auth_overhead.py runs both builds and reports their figures (not their speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_auth_benchmark_measures_both_builds(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "auth_overhead.py"), "--requests", "5",
         "--rounds", "2", "--warmup", "2", "--db-dir", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures["req_per_s"]) == {"none", "key"}
    assert all(len(runs) == 2 for runs in figures["runs"].values())
    low, mid, high = figures["keyed_over_open"]
    assert 0 < low <= mid <= high
