"""`smsgw loadtest` as a command: plan the requests, run the generator, print the report.

The command line (`smsgw_app.cli`) reaches the load test through this module:
its options (`add_arguments`, `options_from`, `OptionError`) and `main`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgspec

from smsgw_app.config import hide_password, mask_password
from smsgw_app.loadtest.generator import LoadGenerator
from smsgw_app.loadtest.mix import plan_requests, planned_count
from smsgw_app.loadtest.options import OptionError, Options, add_arguments, options_from
from smsgw_app.loadtest.pool import NoConnection
from smsgw_app.loadtest.progress import ProgressLine
from smsgw_app.loadtest.report import human

__all__ = ["NoConnection", "OptionError", "add_arguments", "main", "options_from", "run"]

T = TypeVar("T")


async def run(options: Options, database_url: str | None = None) -> dict[str, Any]:
    """Run the load test and return the report's document; raises NoConnection."""
    from smsgw_app.loadtest.delivery import wait_for_delivery

    rng = random.Random(options.seed)
    progress = ProgressLine()
    generator = LoadGenerator(options, plan_requests(options, planned_count(options), rng),
                              progress)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread
        loop.add_signal_handler(signal.SIGINT, generator.stop)
    try:
        await generator.run()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
    document = generator.document()
    if options.wait_delivery and database_url is not None:
        accepted = dict(zip(generator.accepted_ids, generator.accepted_recipients,
                            strict=True))
        try:
            document["delivery"] = await wait_for_delivery(
                database_url, accepted, options.delivery_timeout, progress=progress.show,
            )
        except Exception as exc:  # the sending phase's figures still stand
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            document["delivery_error"] = (f"cannot read {mask_password(database_url)!r}: "
                                          f"{hide_password(reason, database_url)}")
        finally:
            progress.done()
        if "delivery_error" in document:
            print(f"smsgw loadtest: {document['delivery_error']}", file=sys.stderr)
    return document


def _run_on_the_fastest_loop(main: Coroutine[Any, Any, T]) -> T:
    """uvloop when installed (a dependency): measured here it takes about 40% less
    CPU per request than asyncio's own loop, CPU the server under test gets back."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(main)
    return uvloop.run(main)


def main(options: Options, database_url: str | None) -> int:
    """Run, print the report (JSON on stdout with --json); the exit code."""
    try:
        document = _run_on_the_fastest_loop(run(options, database_url))
    except NoConnection as exc:
        print(f"smsgw loadtest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # while building requests or waiting for delivery
        return 130
    if options.json:
        sys.stdout.write(msgspec.json.encode(document).decode() + "\n")
    else:
        print(human(document))
    if document["sent"] == 0:
        print("smsgw loadtest: no request could be sent", file=sys.stderr)
        return 1
    return 0
