"""benchmarks/webhook_client.py runs both clients against the receiver and reports
their CPU per request and the ratio (its figures, not their speed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_client_benchmark_measures_both_clients() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "webhook_client.py"), "--requests", "300",
         "--rounds", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    rounds = re.findall(r"own client (\d+) us, aiohttp (\d+) us of CPU per request: ([\d.]+)x",
                        done.stdout)
    assert len(rounds) == 2, done.stdout
    assert all(int(own) > 0 and int(other) > 0 for own, other, _ in rounds)
    assert re.search(r"median of 2: [\d.]+x", done.stdout), done.stdout
