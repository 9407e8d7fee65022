"""The `smsgw` command line.

Configuration comes from the environment (docs/configuration.md); a bad setting is one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Sequence

from smsgw_adapters.observability import logs, tracing
from smsgw_app.config import ConfigError, Settings, StartupError
from smsgw_app.loadtest import run as loadtest
from smsgw_core.messages import MessageType

# service.name of each process's spans (OTEL_SERVICE_NAME overrides it).
SERVICE_NAMES = {"serve": "smsgw", "api": "smsgw-api", "relay": "smsgw-relay",
                 "worker": "smsgw-worker", "migrate": "smsgw-migrate",
                 "webhooks": "smsgw-webhooks"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsgw", description="Prepaid SMS gateway")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("serve", "run the API, the outbox relay and the delivery workers in one process"),
        ("api", "run the HTTP API only (needs a broker)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=8080)
    commands.add_parser("relay", help="run the outbox relay only (needs a broker)")
    worker = commands.add_parser("worker", help="run the delivery workers only (needs a broker)")
    worker.add_argument(
        "--lane", choices=("all", "express", "normal"), default="all",
        help="consume only this queue: a worker process of its own for express keeps its "
             "time to the operator whatever the normal backlog (default: both)",
    )
    commands.add_parser("webhooks", help="send the customers' status webhooks only "
                        "(needs the database, not the broker)")
    commands.add_parser("migrate", help="apply the database migrations and exit")
    from smsgw_app import outbox_admin  # its own module: the argparse of `smsgw outbox …`

    outbox_admin.add_arguments(commands.add_parser(
        "outbox", help="list parked outbox events, or requeue them"))
    from smsgw_app import keys_admin

    keys_admin.add_arguments(commands.add_parser(
        "keys", help="create, list or revoke API keys"))
    sim = commands.add_parser(
        "operator-sim", help="play an upstream operator over HTTP (or SMPP with --smpp)")
    sim.add_argument("--name", required=True)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=None,
                     help="0: a free one (default 9001, with --smpp 2775)")
    sim.add_argument("--fail-rate", type=float, default=0.0,
                     help="share of sends answered 503 (with --smpp ESME_RSYSERR) (0-1)")
    sim.add_argument("--latency-ms", type=float, default=0.0)
    sim.add_argument("--reject-prefix", default="",
                     help="numbers starting with this are refused with 422 (ESME_RINVDSTADR)")
    from smsgw_adapters.operators import receipt_plan  # light: no HTTP server or client

    receipt_plan.add_receipt_arguments(sim)
    smpp = sim.add_argument_group(
        "SMPP", "an SMSC (smpp/simulator.py): receipts go over the session to the submits "
                "that ask for one (--receipts, --receipt-delay-ms; no --receipt-url)")
    smpp.add_argument("--smpp", action="store_true", help="serve SMPP 3.4 instead of HTTP")
    smpp.add_argument("--control-port", type=int, default=0,
                      help="the HTTP control API (/stats, /submits, /messages, /receipts, "
                           "/control); default a free one")
    smpp.add_argument("--system-id", default="smsgw", help="the binds' system_id")
    smpp.add_argument("--password", default="smsgw", help="the binds' password")
    smpp.add_argument("--throttle-above", type=int, default=0, metavar="N",
                      help="answer ESME_RTHROTTLED above N submits taken a second (0: never)")
    smpp.add_argument("--receipt-format", choices=("10", "12", "tlv"), default="10",
                      help="receipt text with 10- or 12-digit dates, or TLVs only")
    smpp.add_argument("--receipt-before-resp", action="store_true",
                      help="write a receipt's first try before the submit_sm_resp")
    seed = commands.add_parser(
        "seed", help="top up many customers at once, straight into the database")
    seed.add_argument("--users", type=int, required=True, metavar="N", help="how many customers")
    seed.add_argument("--balance", type=int, required=True, metavar="B",
                      help="units added to each")
    seed.add_argument("--first-user", type=int, default=1, metavar="F",
                      help="the first customer id (default 1)")
    loadtest.add_arguments(commands.add_parser(
        "loadtest", help="send POST /sms/send at a rate and report throughput and latency"))
    return parser


def _operator_sim(args: argparse.Namespace) -> int:
    from smsgw_adapters.operators.receipt_plan import receipt_options
    from smsgw_adapters.operators.simulated import Behaviour

    if args.smpp:
        return _smpp_operator_sim(args)
    from smsgw_adapters.operators.simulator_server import run_simulator

    try:
        Behaviour(fail_rate=args.fail_rate, latency_ms=args.latency_ms, receipts=args.receipts,
                  receipt_delay_ms=args.receipt_delay_ms)  # or BehaviourError
        receipts = receipt_options(args)
        level, fmt = logs.settings_from_env()
    except ValueError as exc:
        print(f"smsgw: {exc}", file=sys.stderr)
        return 2
    logs.configure_logging(level, fmt)
    port = 9001 if args.port is None else args.port
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_simulator(args.name, args.host, port, args.fail_rate,
                                  args.latency_ms, args.reject_prefix, **receipts))
    return 0


def _smpp_operator_sim(args: argparse.Namespace) -> int:
    from smsgw_adapters.operators.receipt_plan import ReceiptPlan
    from smsgw_adapters.operators.simulated import Behaviour
    from smsgw_adapters.operators.smpp.simulator import (
        SmppSimulator,
        SmscSettings,
        run_smpp_simulator,
    )

    try:
        if args.receipt_url or args.receipt_token:
            raise ValueError("with --smpp receipts go over the SMPP session: no --receipt-url")
        plan = Behaviour(receipts=args.receipts).receipt_plan or ReceiptPlan()
        settings = SmscSettings(
            fail_rate=args.fail_rate, latency_ms=args.latency_ms,
            reject_prefix=args.reject_prefix, throttle_above=args.throttle_above,
            receipt_format=args.receipt_format, receipt_before_resp=args.receipt_before_resp,
            receipt_delay_ms=args.receipt_delay_ms)
        level, fmt = logs.settings_from_env()
    except ValueError as exc:
        print(f"smsgw: {exc}", file=sys.stderr)
        return 2
    logs.configure_logging(level, fmt)
    simulator = SmppSimulator(args.name, args.system_id, args.password, settings, plan,
                              args.seed)
    port = 2775 if args.port is None else args.port
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_smpp_simulator(simulator, args.host, port, args.control_port))
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    try:
        options = loadtest.options_from(args)
        database_url = Settings.from_env().database_url if options.wait_delivery else None
    except loadtest.OptionError as exc:
        print(f"smsgw loadtest: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"smsgw: configuration error: {exc}", file=sys.stderr)
        return 2
    return loadtest.main(options, database_url)


async def _seed(settings: Settings, first_user: int, users: int, balance: int) -> float:
    """Migrate, then seed; the seconds the seed itself took."""
    from smsgw_adapters.sql.seed import seed_balances
    from smsgw_app.database import opened

    async with opened(settings.database_url, migrate=True) as database:
        started = time.perf_counter()
        await seed_balances(database.engine(), first_user, users, balance, uuid.uuid4().hex)
        return time.perf_counter() - started


def _seed_command(args: argparse.Namespace, settings: Settings) -> int:
    for flag, value in (("--users", args.users), ("--balance", args.balance),
                        ("--first-user", args.first_user)):
        if value < 1:
            print(f"smsgw seed: {flag} must be >= 1", file=sys.stderr)
            return 2
    try:
        seconds = asyncio.run(_seed(settings, args.first_user, args.users, args.balance))
    except StartupError as exc:
        print(f"smsgw: {exc}", file=sys.stderr)
        return 2
    last = args.first_user + args.users - 1
    print(f"seeded {args.users} users ({args.first_user}..{last}) with {args.balance} units "
          f"each in {seconds:.2f} s", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "operator-sim":  # a stand-in operator: none of the gateway's settings
        return _operator_sim(args)
    if args.command == "loadtest":  # a client: the database only to watch delivery
        return _loadtest(args)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"smsgw: configuration error: {exc}", file=sys.stderr)
        return 2
    # Commands whose stdout is their answer (a key, a listing) log to stderr.
    answers = args.command in ("keys", "outbox")
    logs.configure_logging(settings.log_level, settings.log_format,
                           sys.stderr if answers else None)
    try:
        tracing.configure_tracing(service_name=SERVICE_NAMES.get(args.command, "smsgw"))
    except tracing.TracingConfigError as exc:
        print(f"smsgw: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "seed":
            return _seed_command(args, settings)
        if args.command in ("outbox", "keys"):
            from smsgw_app import keys_admin, outbox_admin

            act = outbox_admin.run if args.command == "outbox" else keys_admin.run
            try:
                return asyncio.run(act(args, settings))
            except StartupError as exc:  # the database is away or not migrated
                print(f"smsgw: {exc}", file=sys.stderr)
                return 2
        return _run(args, settings)
    finally:
        tracing.shutdown()  # flush the spans still batched


def _lanes(choice: str) -> frozenset[MessageType]:
    """The lanes `--lane` names: "all" is every one."""
    return frozenset(MessageType) if choice == "all" else frozenset({MessageType(choice)})


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from smsgw_app import processes  # after config: import errors are not config errors
    from smsgw_app.supervisor import ServiceFailed

    commands = {
        "serve": lambda: processes.serve(settings, args.host, args.port),
        "api": lambda: processes.api(settings, args.host, args.port),
        "relay": lambda: processes.relay(settings),
        "worker": lambda: processes.worker(settings, _lanes(getattr(args, "lane", "all"))),
        "migrate": lambda: processes.migrate(settings),
        "webhooks": lambda: processes.webhooks(settings),
    }
    try:
        processes.run(settings, commands[args.command]())
    except StartupError as exc:
        print(f"smsgw: {exc}", file=sys.stderr)
        return 2
    except ServiceFailed as exc:
        print(f"smsgw: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
