"""An operator's cap (`?tps=N`) holds over every worker process, and traffic over it
waits its turn at that operator instead of spilling to the next."""

from __future__ import annotations

import signal
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.harness import SMSGW, GatewayFactory, wait_until

pytestmark = pytest.mark.slow

TPS = 20
RECIPIENTS = 120  # 6 s at the cap


def _time(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


@pytest.mark.parametrize("mode", ["split"])
def test_the_cap_holds_across_two_worker_processes(
    make_gateway: GatewayFactory, mode: str, tmp_path: Path
) -> None:
    gateway = make_gateway(f"A=sim://?tps={TPS},B=sim://")
    second = subprocess.Popen([*SMSGW, "worker"], env={**gateway.env, "SMSGW_METRICS_PORT": "0"},
                              stdout=(tmp_path / "worker2.log").open("ab"),
                              stderr=subprocess.STDOUT)
    try:
        gateway.top_up(91, 10_000)
        with gateway.client() as client:
            for batch in range(RECIPIENTS // 10):
                answer = client.post("/sms/send", json={
                    "customer_id": 91, "text": f"capped {batch}",
                    "recipients": [f"0912{batch:03d}{n:04d}" for n in range(10)]})
                assert answer.status_code == 200, answer.text

        def done() -> list[tuple[str, datetime]]:
            rows = gateway.query("SELECT provider, updated_at FROM sms_status "
                                 "WHERE user_id = 91 AND status = 'DONE'")
            return [(provider, _time(at)) for provider, at in rows]

        finished = wait_until(lambda: (rows := done()) and len(rows) == RECIPIENTS and rows,
                              timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert {provider for provider, _ in finished} == {"A"}  # waited for A, never spilled
    times = sorted(at for _, at in finished)
    span = (times[-1] - times[0]).total_seconds()
    assert span >= 0.8 * RECIPIENTS / TPS, span
    # In any second: the cap, and at most a batch (a tenth of a second) per process.
    # Each SMS of 10 is recorded when its last recipient is sent: the rate from the
    # first record to the last, of the 110 sent after the first SMS's.
    rate = (RECIPIENTS - 10) / span
    assert rate <= TPS * 1.1, rate  # the cap, and a batch in hand per process
