"""`make bench`: the gateway's performance on this machine, against MariaDB and RabbitMQ.

    .venv/bin/python benchmarks/run.py [--quick] [--only SCENARIO,...]

Writes benchmarks/results/<YYYY-MM-DD>.json (everything measured, the machine,
the commit) and <YYYY-MM-DD>.md (the figures against their targets, readable on
its own); a --quick or --only run adds a suffix to the name, so it never
replaces a full run's results.

It needs MariaDB and RabbitMQ (by default root@127.0.0.1:3306 and
guest@127.0.0.1:5672; exit 2 when either is unreachable). It creates the
database `smsgw_bench` afresh (dropped at the end unless --keep-database),
migrates it and seeds 5,000 customers with `smsgw seed`, and gives every
scenario queues of its own (`bench_<scenario>_<run>_{express,normal,dead}`),
deleted afterwards. Then, in order, each in its own processes:

- reference:  benchmarks/reference_limit.py, the API's accept transaction with
              nothing but the driver, over a sweep of concurrencies (the ceiling);
- accept:     two `smsgw api` processes and nothing else (the outbox just fills):
              `smsgw loadtest` closed loop with 1 recipient spread over 5,000
              customers, the same with 90 % from one customer, 100 recipients per
              request, then an open loop at 1,000 req/s for the latency target;
              the message, outbox and ledger tables are emptied before each run;
- end_to_end: two `smsgw operator-sim`, two `smsgw api`, `smsgw relay` and
              `smsgw worker`; 1,300 req/s for 60 s, then waits for every delivery;
- express:    the same without the worker: 100,000 normal recipients accepted
              first (the relay publishes what the normal queue may hold, the
              rest waits in the outbox), then the worker starts and express
              sends go at 50 req/s for 20 s while that backlog drains and
              normal sends keep arriving (100 req/s of 10 recipients);
- fairness:   operators of 200 ms, one customer's 26,000 normal recipients (SMS
              of 100) queued (over 20,000 still waiting when the others start),
              then 10 light customers at 10 normal req/s and express at 10
              req/s for 10 s: their waits, and the heavy customer's rate
              alone (3 s before and 3 s after) and during;
- receipts:   end_to_end twice at the same load (1,300 req/s for 60 s), each half in
              processes of its own and with the same gateway settings (receipt tokens
              included): the simulators reporting nothing, then 85 % delivered, 8 %
              undelivered, 2 % expired, 5 % never, 200 ms after each send (A's to
              api 1, B's to api 2); each waits for every delivery and, with receipts,
              until the simulators owe none and the gateway's smsgw_receipts_total
              counts all they reported. Delivered/s off and on (read from sms_status:
              the load test waits for DONE or FAILED only), receipts applied per
              second, and the CPU receipts add per receipt against the send path's.
- smpp:       end_to_end twice at the same load (1,300 req/s for 60 s), each half in
              processes of its own: two `smsgw operator-sim` over HTTP, then two
              `smsgw operator-sim --smpp` (SMPP operators, a bind per worker process,
              windows of 10); no receipts in either (the HTTP operators carry receipt
              tokens, so the workers look for kept receipts in both). Delivered/s and the
              CPU per delivered SMS of each (read from sms_status and /proc), and their
              ratio (issue 26's bar: SMPP no more than 10 % costlier per SMS).
- webhooks:   end_to_end twice at the same load (1,300 req/s for 60 s), each half in
              processes of its own with the same settings (SMSGW_WEBHOOK_*): no webhook
              endpoints, then one for every customer of the load test (an API key each,
              PUT /v1/webhook, every event type) to a local receiver
              (benchmarks/bench/webhook_sink.py: counts, answers 200, keeps a sample the
              bench verifies with standardwebhooks) and one `smsgw webhooks` process;
              no receipts, so one event per recipient. Each waits for every delivery and,
              with webhooks, until smsgw_webhook_attempts_total counts an outcome for
              every event written. Delivered/s off and on and their ratio (issue 27's
              bar: on at least 0.8 of off), events delivered per second, the webhooks
              process's CPU and SQL per event, CPU per SMS off and on, the events' wait,
              the attempts that failed.

Every process writes its stdout and stderr to files in a temporary directory
(printed at the start and with every failure). Processes are stopped (SIGTERM,
then SIGKILL) whatever happens; a scenario that fails is recorded with its
error and the next one runs. Each scenario also samples CPU time from /proc
(the gateway's processes, MariaDB, RabbitMQ, the load generator, and the rest
of the machine as "other"), which is what says where a missed target's time
went. Keep to one run at a time: it is meant to have the box to itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` importable

from benchmarks import report  # noqa: E402
from benchmarks.bench.gateway import Gateway  # noqa: E402
from benchmarks.bench.plan import (  # noqa: E402
    BALANCE,
    FULL,
    GROUPS,
    QUICK,
    USERS,
    Plan,
    as_document,
    with_changes,
)
from benchmarks.bench.processes import ScenarioError  # noqa: E402
from benchmarks.bench.recorder import Recorder  # noqa: E402
from benchmarks.bench.results import (  # noqa: E402
    command_line,
    gateway_settings,
    git_info,
    machine_info,
)
from benchmarks.bench.scenarios import Scenarios  # noqa: E402
from benchmarks.bench.services import Services  # noqa: E402
from benchmarks.harness.net import reachable  # noqa: E402
from benchmarks.harness.processes import smsgw  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[2:]))
    parser.add_argument("--only", type=lambda s: [g.strip() for g in s.split(",") if g.strip()],
                        default=list(GROUPS),
                        help=f"scenarios to run, comma-separated, of {','.join(GROUPS)}")
    parser.add_argument("--quick", action="store_true",
                        help="seconds instead of minutes: a smoke check, not a measurement")
    parser.add_argument("--database", default="smsgw_bench",
                        help="the database to create afresh and drop (default %(default)s)")
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306",
                        help="the MariaDB server, no database (default %(default)s)")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--log-level", default="INFO",
                        help="SMSGW_LOG_LEVEL of the gateway's processes (default %(default)s)")
    parser.add_argument("--env", action="append", default=[], metavar="SMSGW_X=VALUE",
                        help="a setting for the gateway's processes (repeatable)")
    parser.add_argument("--plan", action="append", default=[], metavar="FIELD=VALUE",
                        help="change one of the plan's durations, rates or concurrencies "
                             f"(repeatable): {', '.join(Plan.__dataclass_fields__)}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    unknown = [g for g in args.only if g not in GROUPS]
    if unknown:
        print(f"bench: unknown scenario(s) {', '.join(unknown)}; choose from "
              f"{', '.join(GROUPS)}", file=sys.stderr)
        return 2
    overrides = dict(item.split("=", 1) for item in args.env if "=" in item)
    services = Services(args.mysql_url, args.amqp_url, args.database)
    for name, host, port in services.endpoints():
        if not reachable(host, port):
            print(f"bench: {name} is not reachable on {host}:{port}", file=sys.stderr)
            return 2

    load = os.getloadavg()[0]
    if load > 1.0:
        print(f"bench: warning: the box is busy (load average {load:.1f}); other work will "
              "lower the figures (each scenario's CPU sample shows it as 'other')",
              file=sys.stderr)
    try:
        plan = with_changes(QUICK if args.quick else FULL, args.plan)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    gateway = Gateway(services, Path(), overrides, args.log_level)
    try:
        settings = gateway_settings(gateway.env("settings"))
    except Exception as exc:  # a bad --env: the gateway would refuse it too
        print(f"bench: configuration error: {exc}", file=sys.stderr)
        return 2
    logdir = gateway.logdir = Path(tempfile.mkdtemp(prefix="smsgw-bench-"))
    recorder = Recorder(logdir)
    scenarios = Scenarios(gateway, plan, recorder)
    started = datetime.now(UTC)
    date = started.astimezone().strftime("%Y-%m-%d")
    stem = date + ("-quick" if args.quick else "")
    if set(args.only) != set(GROUPS):
        stem += "-only-" + "-".join(args.only)
    print(f"bench: logs in {logdir}", flush=True)
    results: dict[str, Any] = {
        "date": date,
        "command": command_line(argv),
        "started_at": started.isoformat(timespec="seconds"),
        "quick": args.quick, "only": args.only, "plan": as_document(plan),
        "machine": machine_info(services), "git": git_info(),
        "settings": settings,
        "notes": ["The message, outbox and ledger tables are emptied before each scenario "
                  "(and between the accept runs), so every run starts from the same tables.",
                  "Throughputs count accepted (2xx) requests per second of the load phase; "
                  "latencies are the load generator's, client side."],
        "logs": str(logdir),
    }
    status = 0
    try:
        services.sql(f"DROP DATABASE IF EXISTS `{args.database}`", database=None)
        services.sql(f"CREATE DATABASE `{args.database}` CHARACTER SET utf8mb4", database=None)
        for step in (["migrate"], ["seed", "--users", str(USERS), "--balance", str(BALANCE)]):
            done = subprocess.run(smsgw(*step), cwd=ROOT, env=gateway.env("setup"),
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines()
                raise ScenarioError(f"smsgw {step[0]} failed: {lines[-1] if lines else '?'}")
        for group in GROUPS:
            if group in args.only:
                try:
                    getattr(scenarios, group)()
                except Exception as exc:  # a scenario's own failures are in its record
                    print(f"bench: {group}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    results.setdefault("errors", {})[group] = f"{type(exc).__name__}: {exc}"
                    status = 1
    except ScenarioError as exc:
        print(f"bench: {exc} (logs in {logdir})", file=sys.stderr)
        results["setup_error"] = str(exc)
        status = 1
    finally:
        if not args.keep_database:
            with contextlib.suppress(Exception):
                services.sql(f"DROP DATABASE IF EXISTS `{args.database}`", database=None)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["scenarios"] = recorder.scenarios
    results["figures"] = report.derive_figures(recorder.scenarios)
    results["targets"] = report.evaluate(results["figures"], recorder.scenarios,
                                         int(results["machine"].get("cpus") or 2))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.results_dir / f"{stem}.json", args.results_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(report.markdown(results))
    print(report.markdown(results))
    print(f"bench: wrote {json_path} and {md_path.name}; logs in {logdir}")
    if any(r["status"] != "ok" for r in recorder.scenarios.values()):
        status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
