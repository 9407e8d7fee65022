"""The reference limit: the API's accept transaction with nothing but the database driver.

    .venv/bin/python benchmarks/reference_limit.py \\
        --database-url mysql+asyncmy://root@127.0.0.1:3306/bench_ref [--json]

Why it exists: a figure like "3,000 accepted requests/s" means little on its
own, since it mostly measures the machine and MariaDB's commit path. This
script is the yardstick for the same box: the exact transaction that
`POST /sms/send` commits for one request with one recipient, issued by a
minimal asyncio loop over the same driver (asyncmy), with no HTTP, no
validation, no framework, no SQLAlchemy. Its best throughput over a sweep of
concurrencies is the ceiling the API could reach on this machine; the API's
figure divided by it is the share of that ceiling the gateway keeps.

What is sent, statement for statement as the API's SQL adapter sends it
(smsgw_adapters/sql: messages.add, outbox.add, ledger.apply/_debit; checked
against MariaDB's session counters), on a connection with autocommit off
(the transaction begins implicitly, as under SQLAlchemy, so no BEGIN), READ
COMMITTED, utf8mb4 and the FOUND_ROWS client flag:

    INSERT INTO sms_status (...)           one PENDING row
    INSERT INTO outbox_events (...)        the delivery as JSON, as smsgw_adapters.codec writes it
    INSERT INTO user_transactions (...)    the charge row
    UPDATE user_balances SET balance = balance + -cost, last_updated = ?
        WHERE user_id = ? AND balance + -cost >= 0     (no row: refused, ROLLBACK)
    COMMIT

Not sent: the two round trips SQLAlchemy's pool adds to every request (a
COM_PING at checkout, pool_pre_ping, and a ROLLBACK when the connection goes
back to the pool after the commit). They are not part of the transaction, so
the ceiling leaves them out; `--pool-round-trips` adds them, to price them.

Each of C tasks owns one connection and runs transactions back to back (a
closed loop) for `--duration` seconds after `--warmup` seconds; the latency
of one transaction is its first statement to its COMMIT's answer. The
customer of each transaction is uniform over `--users` customers from
`--first-user`, or, with `--hot-share H`, the first one with probability H
and the others uniformly (as `smsgw loadtest` picks them). It needs a
migrated database whose customers have balances (`smsgw migrate`, `smsgw
seed`), and it leaves its rows behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` importable

from benchmarks.reference.sweep import sweep  # noqa: E402
from benchmarks.reference.transaction import connect_args  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True,
                        help="mysql+asyncmy://USER[:PASSWORD]@HOST[:PORT]/DATABASE, migrated "
                             "and seeded")
    parser.add_argument("--concurrency", default="4,8,16,32,64,128",
                        type=lambda s: [int(c) for c in s.split(",")],
                        help="connections per level, comma-separated (default %(default)s)")
    parser.add_argument("--duration", type=float, default=4.0,
                        help="measured seconds per level (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="unmeasured seconds before each level (default %(default)s)")
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--first-user", type=int, default=1)
    parser.add_argument("--hot-share", type=float, default=0.0,
                        help="share of transactions from the first user (0-1)")
    parser.add_argument("--pool-round-trips", action="store_true",
                        help="add the ping and the rollback SQLAlchemy's pool sends per request")
    parser.add_argument("--group", type=int, default=1,
                        help="requests per transaction, as the API groups concurrent sends "
                             "(default 1: the one-request transaction); tx/s then counts "
                             "requests")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        connect_args(args.database_url)
    except ValueError as exc:
        print(f"reference_limit: {exc}", file=sys.stderr)
        return 2
    result = asyncio.run(sweep(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        best = result["best"]
        print(f"best: {best['tx_per_s']:.1f} tx/s at concurrency {best['concurrency']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
