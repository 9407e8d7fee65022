"""What API keys cost the accept path: `POST /sms/send` with SMSGW_LEGACY_AUTH=none
(no key) against =key (a Bearer key checked on every request), in process, on SQLite.

    .venv/bin/python benchmarks/auth_overhead.py [--requests 300] [--rounds 16]

The Litestar app and the real SmsSender (SQLite file, WAL) are driven with raw
ASGI calls, one request at a time, so the figure is the request path itself;
the key is in the Authenticator's memory after the first request, as it is on
a busy gateway (one database read per key and second). The two builds take
turns for `--rounds` rounds; it prints each one's median req/s and the median
of the per-round ratios keyed/open, with its interquartile range. The target:
keyed >= 0.9 x open.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` importable

from benchmarks.harness.asgi import post  # noqa: E402

from smsgw_adapters.observability import logs  # noqa: E402
from smsgw_app import processes  # noqa: E402
from smsgw_app.api.app import ApiServices, create_app  # noqa: E402
from smsgw_app.api.backpressure import AdmittedSender, BacklogGate  # noqa: E402
from smsgw_app.config import LegacyAuth, Settings  # noqa: E402
from smsgw_core.services.accounts import TopUp  # noqa: E402
from smsgw_core.services.keys import NewKey  # noqa: E402
from smsgw_core.services.send_limit import LimitedSender  # noqa: E402

USER_ID = 1
BODY = json.dumps({
    "customer_id": USER_ID, "text": "Your code is 4711",
    "recipients": ["+989121234567", "09128582812"], "type": "express",
}).encode()
MODES: tuple[LegacyAuth, ...] = ("none", "key")


async def measure(app: Any, headers: list[tuple[bytes, bytes]], requests: int) -> float:
    gc.collect()
    started = time.perf_counter()
    for _ in range(requests):
        if (status := await post(app, "/sms/send", BODY, headers)) != 200:
            raise SystemExit(f"POST /sms/send answered {status}")
    return requests / (time.perf_counter() - started)


async def run(requests: int, rounds: int, warmup: int, db_dir: str | None,
              devnull: Any) -> dict[str, list[float]]:
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
            key = (await services.keys.create(NewKey(USER_ID))).key
            apps = {mode: create_app(ApiServices(**{**vars(services), "legacy_auth": mode}))
                    for mode in MODES}
            headers = {"none": [], "key": [(b"authorization", f"Bearer {key}".encode())]}
            for mode in MODES:
                await measure(apps[mode], headers[mode], warmup)
            results: dict[str, list[float]] = {mode: [] for mode in MODES}
            for round_ in range(rounds):
                for mode in MODES[round_ % 2:] + MODES[:round_ % 2]:  # who goes first rotates
                    results[mode].append(await measure(apps[mode], headers[mode], requests))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per build and round")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--db-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the SQLite file goes (default: tmpfs)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with open(os.devnull, "w") as devnull:
        results = asyncio.run(run(args.requests, args.rounds, args.warmup, args.db_dir,
                                  devnull))
    medians = {mode: statistics.median(values) for mode, values in results.items()}
    ratios = sorted(k / n for k, n in zip(results["key"], results["none"], strict=True))
    low, mid, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    if args.json:
        print(json.dumps({"req_per_s": medians, "keyed_over_open": [low, mid, high],
                          "runs": results}))
        return 0
    print(f"open  (SMSGW_LEGACY_AUTH=none): {medians['none']:8.0f} req/s")
    print(f"keyed (SMSGW_LEGACY_AUTH=key):  {medians['key']:8.0f} req/s")
    print(f"keyed / open: {mid:.3f} (IQR {low:.3f}-{high:.3f}, {len(ratios)} rounds; "
          f"target >= 0.9)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
