"""`make chaos`: a Jepsen-style bank workload against the split gateway.

    .venv/bin/python benchmarks/chaos.py [--duration 60] [--kills 30] [--seed N] [--json]
                                         [--operators http|smpp]

What it runs, all on this machine: two `smsgw api`, one `smsgw relay`, one
`smsgw worker --lane express` and one `--lane normal`, on a MariaDB database
and RabbitMQ queues of this run (`smsgw_chaos_<run>`, dropped and deleted at
the end), and two `smsgw operator-sim` (A fails 20 % of sends, B 5 %, both
refuse numbers starting 0999, and both fail everything for 4 s mid-run). The
gateway reaches MariaDB and RabbitMQ only through TCP forwarders of this
script, so it can cut the gateway's own connections (every one, at once)
without touching the shared servers, which are never stopped.

For `--duration` seconds, client threads send normal and express SMS (1-4
recipients, one or two segments) to both APIs for customers seeded with `smsgw
seed` (three of them can afford a few sends only; 5 % of the numbers are
refused ones), half of them with an Idempotency-Key; a 5xx, a timeout or a
broken connection is retried with the same key and body (a send without a key
is retried only when its connection was refused: otherwise its fate is unknown
to the client). Meanwhile it kills -9 a random gateway process `--kills`
times, evenly spread, restarting each at once, and cuts every connection to
the database and to the broker (twice each by default). Any process that exits
on its own is restarted too, and counted.

Then it drains (every process up, nothing cut) until no recipient is
unfinished, for at most --drain-timeout seconds, and checks, reading the
database directly:

- every recipient of a 200-answered send exists and is terminal (DONE or
  FAILED), and so is every other recipient row;
- per customer, the balance equals the sum of its ledger rows, and is >= 0;
- each SMS has its one charge, of the cost the API answered;
- each FAILED recipient is refunded exactly once, its share; no DONE recipient
  is refunded; no refund without its FAILED recipient;
- one Idempotency-Key never yields two sms_identifiers (nor a 409 for the same
  body), and the stored answer is the one the client got;
- every DONE recipient was accepted by an operator (the simulators'
  `GET /references`).

With `--operators smpp` the two operators are SMSCs instead, `smsgw operator-sim
--smpp`, with the same shares of failed sends (ESME_RSYSERR: transient), latencies,
refused numbers (ESME_RINVDSTADR: permanent) and 4 s down, reached as
`smpp://…?window=10&binds=2` (each worker process binds its own). They report no
receipts (`--receipts none=1`), so a sent recipient stays DONE as with the HTTP
simulators and the same checks hold. SMPP carries no reference: "accepted by an
operator" is read as "the message id the DONE recipient keeps is one its SMSC
issued" (each SMSC lists the ids it took in /receipts' "none"), duplicates are the
SMSCs' own count (a submit_sm taken again with the same addresses and octets), and a
send taken by both operators is not seen (across is 0).

Counted and reported, but not violations: 5xx answers and timeouts, duplicate
operator sends (a reference accepted twice by one operator, or by both: they
are expected in crash windows), FAILED recipients an operator did accept (the
customer was refunded a message that went out).

It prints one summary line (and, with --json, a JSON document last) and exits
0 when no check failed, 1 on any violation, 2 when it could not run, or did
not do what it was asked (fewer kills or cuts, a cut that found no connection,
no send accepted: the "run_problems" of the summary).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` importable

from benchmarks.faults.checks import Database, check  # noqa: E402
from benchmarks.faults.operators import (  # noqa: E402
    DOWN_S,
    STOP_GRACE_S,
    launch,
    ready_line,
)
from benchmarks.faults.run import TTL_S, Options, run  # noqa: E402
from benchmarks.faults.summary import summary_line  # noqa: E402
from benchmarks.faults.workload import Accepted, Load  # noqa: E402
from benchmarks.harness import processes  # noqa: E402

# What the tests drive: a whole run, or the checks on a hand-made one.
__all__ = ["OPERATOR_KINDS", "Accepted", "Load", "Options", "check", "check_smpp", "main",
           "run", "run_with", "smpp_references", "summary_line"]

OPERATOR_KINDS = ("http", "smpp")

# --- SMPP operators (--operators smpp) ------------------------------------------------

SMPP_SYSTEM_ID, SMPP_PASSWORD = "chaos", "chaos"
SMPP_OPTIONS = "window=10&binds=2"
_SMSC_READY = re.compile(r"listening on smpp://(\S+) control on (http://\S+)\s*$")


@dataclass
class SmppSim:
    """`smsgw operator-sim --smpp` standing in for benchmarks.faults.operators.Sim: `url`
    is what SMSGW_OPERATORS names it by (smpp://…), /stats and /control are on its
    control port, and "/references" answers the message ids it took, one per message
    (its first part's: the id a DONE recipient keeps), for check_smpp to turn into
    references."""

    name: str
    popen: subprocess.Popen[bytes]
    url: str = ""
    control_url: str = ""

    def get(self, path: str) -> Any:
        if path == "/references":
            return {"accepted": self._get("/receipts")["none"]}  # none=1: every id taken
        return self._get(path)

    def _get(self, path: str) -> Any:
        response = httpx.get(f"{self.control_url}{path}", timeout=60)
        response.raise_for_status()
        return response.json()

    def control(self, **settings: Any) -> None:
        httpx.post(f"{self.control_url}/control", json=settings,
                   timeout=30).raise_for_status()

    def stop(self) -> None:
        processes.stop([self.popen], STOP_GRACE_S)


def start_smpp_sim(logdir: Path, name: str, fail_rate: float, latency_ms: float,
                   reject_prefix: str) -> SmppSim:
    """An SMSC with the HTTP simulator's behaviour (benchmarks.faults.operators.SIMS),
    reporting no receipts; started from this checkout as the HTTP ones are."""
    sim = SmppSim(name, launch(
        logdir, name, "--smpp", "--port", "0", "--control-port", "0",
        "--system-id", SMPP_SYSTEM_ID, "--password", SMPP_PASSWORD,
        "--fail-rate", str(fail_rate), "--latency-ms", str(latency_ms),
        "--reject-prefix", reject_prefix, "--receipts", "none=1"))
    line = ready_line(sim.popen, lambda text: _SMSC_READY.search(text) is not None)
    found = _SMSC_READY.search(line) if line is not None else None
    if found is None:
        sim.stop()
        raise RuntimeError(f"operator-sim --smpp {name} did not start; see {logdir}")
    sim.url = f"smpp://{SMPP_SYSTEM_ID}:{SMPP_PASSWORD}@{found.group(1)}?{SMPP_OPTIONS}"
    sim.control_url = found.group(2)
    return sim


def smpp_references(rows: Iterable[tuple[Any, ...]], taken: Mapping[str, Iterable[str]],
                    ) -> dict[str, list[str]]:
    """operator -> the references (`sms:recipient`) of the recipients whose message id
    (rows: sms_identifier, recipient, provider, message_id) that operator's SMSC took."""
    ids = {name: set(message_ids) for name, message_ids in taken.items()}
    found: dict[str, list[str]] = {name: [] for name in ids}
    for sms, recipient, provider, message_id in rows:
        if message_id and str(message_id) in ids.get(str(provider), ()):
            found[str(provider)].append(f"{sms}:{recipient}")
    return found


def check_smpp(services: Database, load: Load, sims: dict[str, dict[str, Any]],
               ) -> dict[str, Any]:
    """`check`, the SMSCs' message ids ("references") read as the references of the
    recipients that keep them."""
    rows = services.sql("SELECT sms_identifier, recipient, provider, message_id"
                        " FROM sms_status")
    references = smpp_references(rows, {name: s["references"] for name, s in sims.items()})
    return check(services, load, {name: {**s, "references": references[name]}
                                  for name, s in sims.items()})


def run_with(options: Options, operators: str = "http") -> dict[str, Any]:
    """One chaos run with HTTP operator simulators or (`smpp`) simulated SMSCs."""
    if operators not in OPERATOR_KINDS:
        raise ValueError(f"operators: one of {', '.join(OPERATOR_KINDS)}, not {operators!r}")
    if operators == "smpp":
        options = dataclasses.replace(options, start_sim=start_smpp_sim, check=check_smpp)
    summary = run(options)
    summary["operator_protocol"] = operators
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Kill and cut the split gateway under load, then check money and states.")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--kills", type=int, default=30,
                        help="kill -9 of a random gateway process, spread evenly (30)")
    parser.add_argument("--cuts", type=int, default=2,
                        help="cuts of all database and of all broker connections, each (2)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--clients", type=int, default=6, help="client threads (6)")
    parser.add_argument("--customers", type=int, default=20, help="customers seeded (20)")
    parser.add_argument("--drain-timeout", type=float, default=180.0,
                        help="seconds to wait for every recipient to finish (180)")
    parser.add_argument("--operators-down", type=float, default=DOWN_S, metavar="S",
                        help=f"seconds both operators fail every send, mid-run ({DOWN_S:g})")
    parser.add_argument("--ttl", type=float, default=TTL_S, metavar="S",
                        help=f"SMSGW_MESSAGE_TTL_S of the gateway ({TTL_S:g})")
    parser.add_argument("--operators", choices=OPERATOR_KINDS, default="http",
                        help="the two operators: HTTP simulators (http) or SMSCs over SMPP,"
                             " `operator-sim --smpp` (smpp)")
    parser.add_argument("--mysql", default=os.environ.get(
        "SMSGW_CHAOS_MYSQL", "mysql://root@127.0.0.1:3306"), help="the MariaDB server")
    parser.add_argument("--amqp", default=os.environ.get(
        "SMSGW_CHAOS_AMQP", "amqp://guest:guest@127.0.0.1:5672/"), help="the RabbitMQ server")
    parser.add_argument("--workdir", type=Path, default=None, help="where the logs go")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database and queues afterwards")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON too")
    parser.add_argument("--gateway-src", type=Path, default=None, metavar="CHECKOUT",
                        help="run the gateway's code from CHECKOUT/src (e.g. an export of"
                             " another branch); the simulators and checks stay this one's")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.kills < 0 or args.cuts < 0:
        parser.error("--duration must be > 0, --kills and --cuts >= 0")
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    # `timeout` (as `make chaos` uses) sends SIGTERM: clean up as for Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    options = Options(duration=args.duration, kills=args.kills, cuts=args.cuts, seed=seed,
                      clients=args.clients, customers=args.customers,
                      drain_timeout=args.drain_timeout, mysql_url=args.mysql,
                      operators_down=args.operators_down, ttl=args.ttl,
                      amqp_url=args.amqp, workdir=args.workdir, keep=args.keep,
                      gateway_src=args.gateway_src)
    try:
        summary = run_with(options, args.operators)
    except (RuntimeError, subprocess.SubprocessError, OSError, httpx.HTTPError) as exc:
        print(f"chaos: cannot run: {exc}", file=sys.stderr)
        return 2
    line = summary_line(summary)
    print(line + (" | SMPP operators" if args.operators == "smpp" else ""), flush=True)
    if summary["violations"]:
        for kind, example in summary["violation_examples"].items():
            print(f"  {kind}: e.g. {example}", flush=True)
    if args.json:
        print(json.dumps(summary, sort_keys=True), flush=True)
    if summary["violations"]:
        return 1
    return 2 if summary["run_problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
