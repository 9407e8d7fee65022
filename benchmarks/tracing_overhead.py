"""What tracing costs the accept path: `POST /sms/send` throughput, in process, on SQLite.

    .venv/bin/python benchmarks/tracing_overhead.py [--requests 300] [--rounds 16]

The Litestar app and the real SmsSender (SQLite file, WAL) are driven with raw
ASGI calls, one request at a time, so the figure is the request path itself:
routing, validation, the accept transaction, the JSON log line. Four builds:

- bypassed: the tracing hooks replaced by stubs, as a build without tracing code;
- off:      the shipped default (no OTEL_TRACES_EXPORTER): no SDK, no middleware;
- sdk:      an SDK provider with no exporter: server span and context capture, nothing sent;
- on:       the SDK with a batch exporter (JSON to /dev/null), as OTEL_TRACES_EXPORTER=console
            would, but batched like otlp.

Builds take turns for `--rounds` rounds (so drift of the database or the
machine hits them alike); each prints its median req/s, the median of its
per-round ratios to bypassed (with their interquartile range), and the rounds.
The target: `off` within 5% of `bypassed`. Last, the accept path's tracing
hooks are timed alone with tracing off (ns per request).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` importable

from benchmarks.harness.asgi import post  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter  # noqa: E402

from smsgw_adapters.observability import logs, tracing  # noqa: E402
from smsgw_app import processes  # noqa: E402
from smsgw_app.api import sms as sms_api  # noqa: E402
from smsgw_app.api.app import ApiServices, create_app  # noqa: E402
from smsgw_app.api.backpressure import AdmittedSender, BacklogGate  # noqa: E402
from smsgw_app.config import Settings  # noqa: E402
from smsgw_core.services.accounts import TopUp  # noqa: E402
from smsgw_core.services.send_limit import LimitedSender  # noqa: E402

USER_ID = 1
BODY = json.dumps({
    "customer_id": USER_ID, "text": "Your code is 4711",
    "recipients": ["+989121234567", "09128582812"], "type": "express",
}).encode()

ASGIApp = Any  # a Litestar app, called as ASGI


def _no_tracing() -> Any:
    """The tracing module as a build without tracing would have it: the hooks do nothing."""
    return SimpleNamespace(
        USER_ID=tracing.USER_ID, SMS_IDENTIFIER=tracing.SMS_IDENTIFIER, TYPE=tracing.TYPE,
        capture=dict, annotate=lambda attributes: None,
    )


def build(mode: str, services: ApiServices, devnull: Any) -> tuple[ASGIApp, TracerProvider | None]:
    vars(sms_api)["tracing"] = _no_tracing() if mode == "bypassed" else tracing
    provider: TracerProvider | None = None
    if mode in ("sdk", "on"):
        provider = TracerProvider()
        if mode == "on":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(
                out=devnull, formatter=tracing.span_json_line,
            )))
    tracing.install(provider)
    return create_app(services), provider


async def measure(app: ASGIApp, requests: int) -> float:
    gc.collect()  # no build pays for another's garbage
    started = time.perf_counter()
    for _ in range(requests):
        status = await post(app, "/sms/send", BODY)
        if status != 200:
            raise SystemExit(f"POST /sms/send answered {status}")
    return requests / (time.perf_counter() - started)


async def run(
    requests: int, rounds: int, warmup: int, modes: list[str], devnull: Any, db_dir: str | None
) -> dict[str, list[float]]:
    logs.configure_logging("INFO", "json", devnull)
    with tempfile.TemporaryDirectory(dir=db_dir) as tmp:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        async with processes.started(settings) as container:
            # The use case without group commit (one transaction per request), as before.
            sender = AdmittedSender(BacklogGate(0), LimitedSender(
                container.send_limits(), container.sms_sender()))
            services = ApiServices(
                sender, container.history(), container.accounts(), {},
                container.authenticator(), container.customers(), container.keys(),
            )
            await services.accounts.top_up(TopUp(USER_ID, 10**15, "bench"))
            results: dict[str, list[float]] = {mode: [] for mode in modes}
            for mode in modes:  # warm every path up once
                app, provider = build(mode, services, devnull)
                await measure(app, warmup)
                if provider is not None:
                    provider.shutdown()
            for round_ in range(rounds):
                # Rotate who goes first, so no build always runs on a fresher database.
                for mode in modes[round_ % len(modes):] + modes[:round_ % len(modes)]:
                    app, provider = build(mode, services, devnull)
                    results[mode].append(await measure(app, requests))
                    if provider is not None:
                        provider.shutdown()
            tracing.install(None)
            vars(sms_api)["tracing"] = tracing
    return results


def paired_ratios(results: dict[str, list[float]]) -> dict[str, tuple[float, float, float]]:
    """Each build's req/s over bypassed's in the same round: (lower quartile, median,
    upper quartile). Pairing cancels the drift between rounds the machine adds."""
    base = results.get("bypassed")
    if not base:
        return {}
    ratios: dict[str, tuple[float, float, float]] = {}
    for mode, values in results.items():
        paired = sorted(v / b for v, b in zip(values, base, strict=True))
        if len(paired) >= 2:
            low, mid, high = statistics.quantiles(paired, n=4)
        else:
            low = mid = high = paired[0]
        ratios[mode] = (low, mid, high)
    return ratios


def hook_cost_ns(calls: int = 200_000) -> float:
    """What the accept path's tracing hooks cost per request with tracing off, in ns:
    the calls `POST /sms/send` makes (capture, annotate), timed alone."""
    tracing.install(None)
    attributes: dict[str, str | int] = {
        tracing.USER_ID: 1, tracing.SMS_IDENTIFIER: "x", tracing.TYPE: "normal"
    }
    started = time.perf_counter_ns()
    for _ in range(calls):
        tracing.capture()
        tracing.annotate(attributes)
    return (time.perf_counter_ns() - started) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per build and round")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--modes", default="bypassed,off,sdk,on")
    parser.add_argument(
        "--db-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where the SQLite file goes (default: tmpfs, so disk syncs do not drown the "
        "difference; pass a disk directory for figures with a real disk)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    with open(os.devnull, "w") as devnull:
        results = asyncio.run(
            run(args.requests, args.rounds, args.warmup, modes, devnull, args.db_dir)
        )
    medians = {mode: statistics.median(values) for mode, values in results.items()}
    base = medians.get("bypassed") or next(iter(medians.values()))
    hooks_ns = hook_cost_ns()
    if args.json:
        print(json.dumps({"requests": args.requests, "rounds": args.rounds,
                          "req_per_s": medians, "paired_ratio": paired_ratios(results),
                          "runs": results, "off_hooks_ns": hooks_ns}))
        return 0
    ratios = paired_ratios(results)
    print(f"POST /sms/send, {args.requests} requests x {args.rounds} rounds, SQLite, in process")
    print(f"{'build':<10}{'req/s (median)':>16}{'vs bypassed':>13}{'paired (IQR)':>22}   rounds")
    for mode, value in medians.items():
        runs = " ".join(f"{v:.0f}" for v in results[mode])
        paired = ""
        if mode in ratios:
            low, mid, high = ratios[mode]
            paired = f"{mid:.1%} ({low:.0%}-{high:.0%})"
        print(f"{mode:<10}{value:>16.0f}{value / base:>13.1%}{paired:>22}   {runs}")
    if "off" in ratios:
        cost = 1 - ratios["off"][1]
        print(f"tracing off costs {cost:.1%} of accept throughput, paired median "
              "(target < 5%)")
    share = hooks_ns / (1e9 / base)
    print(f"the hooks alone, tracing off: {hooks_ns:.0f} ns per request "
          f"({share:.4%} of a request at {base:.0f} req/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
