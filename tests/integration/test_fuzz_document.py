"""The OpenAPI document tells the truth: a schema-driven fuzzer finds nothing.

Schemathesis reads /swagger/openapi.json from a running gateway and derives
its cases from it, every phase (examples, boundary coverage, fuzzing,
stateful) and every check on: no 5xx, only documented statuses, bodies that
match their schemas, what the document calls valid accepted and what it
calls invalid refused, 405s with Allow. Sends it generated as valid are made
by funded customers (fuzz_hooks), so at least some must have been accepted.
SMSGW_FUZZ_SEED and SMSGW_FUZZ_EXAMPLES change the run (e.g. to look for
more than make test does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.integration.conftest import gateway_env
from tests.integration.harness import Gateway

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
FUNDED = list(range(7_000_000_001, 7_000_000_006))
SEED = os.environ.get("SMSGW_FUZZ_SEED", "20261203")  # fixed: make test is reproducible
EXAMPLES = os.environ.get("SMSGW_FUZZ_EXAMPLES", "60")


@pytest.fixture(scope="module", params=["serve", "split"])
def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Gateway]:
    with ExitStack() as stack:
        workdir = tmp_path_factory.mktemp("fuzz")
        mode = str(request.param)
        # The backlog gate off: a 503 is a documented answer, but the fuzzer's
        # "no server error" check counts every 5xx, and this run is not about load.
        env = gateway_env(mode, workdir, stack, SMSGW_MAX_BACKLOG="0")
        gateway = Gateway(mode, env, workdir).start()
        try:
            yield gateway
        finally:
            gateway.stop()


def withdrawals(gateway: Gateway, user_id: int) -> int:
    """How many sends `user_id` was charged for, read page by page."""
    count, cursor = 0, None
    with gateway.client() as c:
        while True:
            params: dict[str, int] = {"user_id": user_id}
            if cursor is not None:
                params["cursor"] = int(cursor)
            page = c.get("/balance", params=params).json()
            count += sum(t["TransactionType"] == "withdrawal" for t in page["transactions"])
            if (cursor := page["next_cursor"]) is None:
                return count


def test_the_fuzzer_finds_nothing_and_valid_sends_are_accepted(
    fuzzed: Gateway, tmp_path: Path
) -> None:
    for user_id in FUNDED:
        fuzzed.top_up(user_id, 10**12)
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{fuzzed.url}/swagger/openapi.json",
         "--checks", "all", "--max-examples", EXAMPLES, "--seed", SEED,
         "--generation-database", "none", "--workers", "1",
         "--report", "junit", "--report-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(ROOT / "tests/integration/fuzz_hooks.py"),
             "SMSGW_FUZZ_CUSTOMERS": ",".join(map(str, FUNDED)), "NO_COLOR": "1"},
    )
    report = run.stdout[-12_000:] + run.stderr[-4_000:]
    assert run.returncode == 0, report
    assert "No issues found" in run.stdout, report
    fuzzed.check_alive()
    accepted = sum(withdrawals(fuzzed, user_id) for user_id in FUNDED)
    assert accepted >= 10, (accepted, report)
