"""The chaos test, in its 60-second version (`make chaos` runs it longer).

benchmarks/chaos.py does the work: the split gateway (2 api, a relay, a worker per
lane, 2 operator simulators failing some sends) on a MariaDB database and RabbitMQ
queues of its own, reached through TCP forwarders it can cut; a load of sends with and
without Idempotency-Key, retried on 5xx and timeouts; 30 kill -9 of random gateway
processes, each restarted; every database and every broker connection cut, twice each;
then a drain and the checks (terminal states, balances == ledgers >= 0, one refund per
FAILED recipient and none per DONE one, one sms_identifier per key, DONE only when an
operator accepted it). Duplicate operator sends are counted, never a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks import chaos

from tests.services import (
    MARIADB_HOST,
    MARIADB_PORT,
    MARIADB_USER,
    RABBITMQ_URL,
    need_mariadb,
    need_rabbitmq,
)

pytestmark = pytest.mark.slow

DURATION_S = 60.0
KILLS = 30
CUTS = 2


def test_chaos_kills_and_cuts_lose_no_money_and_leave_nothing_unfinished(
    tmp_path: Path,
) -> None:
    need_mariadb()
    need_rabbitmq()
    summary = chaos.run(chaos.Options(
        duration=DURATION_S, kills=KILLS, cuts=CUTS, seed=9, workdir=tmp_path,
        mysql_url=f"mysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}",
        amqp_url=RABBITMQ_URL, drain_timeout=180.0,
    ))
    line = chaos.summary_line(summary)
    print(line)
    # The run did what it says: load, kills and cuts that reached live connections.
    assert summary["duration_s"] >= DURATION_S
    assert summary["kills"] >= KILLS, line
    assert summary["db_cuts"] >= CUTS and summary["db_connections_cut"] > 0, line
    assert summary["mq_cuts"] >= CUTS and summary["mq_connections_cut"] > 0, line
    assert summary["accepted_sms"] > 100 and summary["keyed_sms"] > 0, line
    assert summary["recipients"] >= summary["accepted_sms"], line
    assert summary["run_problems"] == [], line
    # ... and nothing went wrong with money or states.
    assert summary["violations"] == {}, f"{line}\n{summary['violation_examples']}"
