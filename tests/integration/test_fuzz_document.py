"""The OpenAPI document tells the truth: a schema-driven fuzzer finds nothing.

Schemathesis reads /swagger/openapi.json from a running gateway and derives
its cases from it, every phase (examples, boundary coverage, fuzzing,
stateful) and every check on: no 5xx, only documented statuses, bodies that
match their schemas, what the document calls valid accepted and what it
calls invalid refused, 405s with Allow. Sends it generated as valid are made
by customers it tops up first (fuzz_hooks, named by schemathesis.toml, as when
it is run by hand from the project root), so many must have been accepted.
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
from tests.integration.helpers import new_key

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
FUZZ_CUSTOMER = 9_000_000_001
SEED = os.environ.get("SMSGW_FUZZ_SEED", "20261203")  # fixed: make test is reproducible
EXAMPLES = os.environ.get("SMSGW_FUZZ_EXAMPLES", "60")
RECEIPT_TOKEN = "fuzzed-operator-token"


@pytest.fixture(scope="module", params=["serve", "split"])
def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Gateway]:
    with ExitStack() as stack:
        workdir = tmp_path_factory.mktemp("fuzz")
        mode = str(request.param)
        # The backlog gate off: a 503 is a documented answer, but the fuzzer's
        # "no server error" check counts every 5xx, and this run is not about load.
        # Operator A takes receipts with RECEIPT_TOKEN: the operators' route is fuzzed too.
        # Webhook URLs as the document states them: http:// and any address allowed
        # (the refusals of https-only and of private addresses are tested on their own).
        env = gateway_env(mode, workdir, stack, SMSGW_MAX_BACKLOG="0",
                          SMSGW_OPERATORS=f"A=sim://?receipt_token={RECEIPT_TOKEN},B=sim://",
                          SMSGW_WEBHOOK_ALLOW_HTTP="1", SMSGW_WEBHOOK_ALLOW_PRIVATE="1")
        gateway = Gateway(mode, env, workdir).start()
        try:
            yield gateway
        finally:
            gateway.stop()


def fuzz(gateway: Gateway, key: str, report_dir: Path, *only: str,
         customer_key: str = "") -> str:
    """One run with this key on the operations `only` selects; its report, on success."""
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{gateway.url}/swagger/openapi.json",
         "--checks", "all", "--max-examples", EXAMPLES, "--seed", SEED,
         "--generation-database", "none", "--workers", "1", *only,
         "-H", f"Authorization: Bearer {key}",
         "--report", "junit", "--report-dir", str(report_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "NO_COLOR": "1", "SMSGW_FUZZ_CUSTOMER": str(FUZZ_CUSTOMER),
             "SMSGW_FUZZ_OPERATOR": "A", "SMSGW_FUZZ_KEY": customer_key},
    )
    report = run.stdout[-12_000:] + run.stderr[-4_000:]
    assert run.returncode == 0, report
    assert "No issues found" in run.stdout, report
    assert key not in report
    return report


def test_the_fuzzer_finds_nothing_and_valid_sends_are_accepted(
    fuzzed: Gateway, tmp_path: Path
) -> None:
    # The seed routes and /v1's customer routes with a customer's key, the admin
    # routes with an admin key; each run also sends without it ("ignored auth").
    customer = new_key(fuzzed, "--customer", str(FUZZ_CUSTOMER))
    report = fuzz(fuzzed, customer, tmp_path / "customer", "--exclude-tag", "v1 admin",
                  "--exclude-tag", "operators", customer_key=customer)
    fuzz(fuzzed, new_key(fuzzed, "--admin"), tmp_path / "admin", "--include-tag", "v1 admin")
    # An operator's receipts, with A's token (fuzz_hooks sends the valid ones as A's).
    fuzz(fuzzed, RECEIPT_TOKEN, tmp_path / "operator", "--include-tag", "operators")
    fuzzed.check_alive()
    [(charged,)] = fuzzed.query(
        "SELECT COUNT(*) FROM user_transactions WHERE transaction_type = 'charge'")
    [(as_customer,)] = fuzzed.query(
        "SELECT COUNT(*) FROM user_transactions WHERE transaction_type = 'charge'"
        " AND user_id = ?", FUZZ_CUSTOMER)
    assert int(charged) >= 50 and int(as_customer) >= 10, (charged, as_customer, report)
