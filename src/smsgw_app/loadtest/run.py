"""The load generator: options, request bodies, open and closed loop, the report.

Open loop (``--rps R``): request i is due at start + i/R whatever happened to
the ones before; a due request goes to a free connection (the one freed last,
so a hot set of connections stays warm while the rest idle) or waits in line
for one. Its latency counts from the moment it was due, so time spent queued
in the generator is part of it (no coordinated omission).
Closed loop (``--rps 0``): every connection sends back to back; latency counts
from the send. Requests are built and serialized before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import resource
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import msgspec

from smsgw_app.config import hide_password, mask_password
from smsgw_app.loadtest.client import (
    ConnectFailed,
    HttpConnection,
    RequestError,
    RequestTimeout,
    Target,
)
from smsgw_app.loadtest.report import human, percentiles_ms

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TEXT = "Load test message from smsgw"
ROUTE = "/sms/send"
MAX_PLANNED = 100_000  # distinct request bodies built ahead; longer runs cycle through them
CLOSED_LOOP_PLANNED = 20_000
IDLE_REUSE_S = 4.0  # reconnect rather than reuse a connection idle this long (uvicorn drops at 5)
CONNECT_RETRY_S = 0.1
MIN_SLEEP_S = 0.001  # the timers' resolution


T = TypeVar("T")

# Every timestamp: uvloop's loop.time() is in whole milliseconds, cached per turn.
_now = time.monotonic


class OptionError(ValueError):
    """A bad option: one line, exit 2."""


@dataclass(frozen=True, slots=True)
class Options:
    url: list[str] = field(default_factory=lambda: [DEFAULT_URL])
    rps: float = 1000.0
    duration: float = 30.0
    concurrency: int = 200
    users: int = 5000
    first_user: int = 1
    hot_share: float = 0.0
    recipients: int = 1
    express_ratio: float = 0.2
    text: str = DEFAULT_TEXT
    timeout: float = 10.0
    seed: int | None = None
    json: bool = False
    wait_delivery: bool = False
    delivery_timeout: float = 120.0

    def check(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise OptionError(message)

        need(bool(self.url), "--url: at least one")
        for url in self.url:
            Target.parse(url, ROUTE)  # raises ValueError naming the URL
        need(math.isfinite(self.rps) and self.rps >= 0, "--rps must be >= 0 (0: closed loop)")
        need(math.isfinite(self.duration) and self.duration > 0, "--duration must be > 0")
        need(self.concurrency >= 1, "--concurrency must be >= 1")
        need(self.users >= 1, "--users must be >= 1")
        need(self.first_user >= 1, "--first-user must be >= 1")
        need(0.0 <= self.hot_share <= 1.0, "--hot-share must be between 0 and 1")
        need(1 <= self.recipients <= 1000, "--recipients must be between 1 and 1000")
        need(0.0 <= self.express_ratio <= 1.0, "--express-ratio must be between 0 and 1")
        need(bool(self.text), "--text must not be empty")
        need(math.isfinite(self.timeout) and self.timeout > 0, "--timeout must be > 0")
        need(math.isfinite(self.delivery_timeout) and self.delivery_timeout >= 0,
             "--delivery-timeout must be >= 0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default = Options()
    parser.add_argument("--url", action="append", default=None, metavar="URL",
                        help=f"gateway base URL, repeatable; connections are spread "
                             f"round-robin (default {DEFAULT_URL})")
    parser.add_argument("--rps", type=float, metavar="R", default=default.rps,
                        help="target request rate, open loop; 0: closed loop, every "
                             "connection back to back (default %(default)g)")
    parser.add_argument("--duration", type=float, metavar="S", default=default.duration,
                        help="seconds of sending (default %(default)g)")
    parser.add_argument("--concurrency", type=int, metavar="C", default=default.concurrency,
                        help="connections (default %(default)d)")
    parser.add_argument("--users", type=int, metavar="U", default=default.users,
                        help="customers first-user .. first-user+users-1 (default %(default)d)")
    parser.add_argument("--first-user", type=int, metavar="F", default=default.first_user,
                        help="the first customer id (default %(default)d)")
    parser.add_argument("--hot-share", type=float, metavar="H", default=default.hot_share,
                        help="share of requests (0-1) from customer first-user; the rest "
                             "uniform over the others (default %(default)g)")
    parser.add_argument("--recipients", type=int, metavar="K", default=default.recipients,
                        help="distinct recipients per request (default %(default)d)")
    parser.add_argument("--express-ratio", type=float, metavar="E", default=default.express_ratio,
                        help="share of express requests (default %(default)g)")
    parser.add_argument("--text", default=default.text,
                        help="the message text (default: a short GSM-7 text)")
    parser.add_argument("--timeout", type=float, metavar="S", default=default.timeout,
                        help="seconds a request may take (default %(default)g)")
    parser.add_argument("--seed", type=int, metavar="N", default=None,
                        help="random seed of the request mix, for a repeatable run")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout instead of the report")
    parser.add_argument("--wait-delivery", action="store_true",
                        help="then wait until every accepted recipient is DONE or FAILED "
                             "(reads SMSGW_DATABASE_URL) and report delivery")
    parser.add_argument("--delivery-timeout", type=float, metavar="S",
                        default=default.delivery_timeout,
                        help="seconds to wait for delivery (default %(default)g)")


def options_from(args: argparse.Namespace) -> Options:
    options = Options(
        url=list(args.url or [DEFAULT_URL]), rps=args.rps, duration=args.duration,
        concurrency=args.concurrency, users=args.users, first_user=args.first_user,
        hot_share=args.hot_share, recipients=args.recipients, express_ratio=args.express_ratio,
        text=args.text, timeout=args.timeout, seed=args.seed, json=args.json,
        wait_delivery=args.wait_delivery, delivery_timeout=args.delivery_timeout,
    )
    try:
        options.check()
    except OptionError:
        raise
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    return options


# The request mix


def plan_requests(options: Options, count: int, rng: random.Random) -> list[bytes]:
    """`count` serialized requests: Content-Length, the blank line and the JSON body.

    Customers: with probability hot_share the first user, otherwise uniform over
    the others (over all of them when hot_share is 0); express with probability
    express_ratio; `recipients` distinct numbers +4479xxxxxxxx.
    """
    first, users = options.first_user, options.users
    encode = msgspec.json.Encoder().encode
    text = options.text
    planned = []
    for _ in range(count):
        if users == 1 or (options.hot_share > 0 and rng.random() < options.hot_share):
            customer = first
        elif options.hot_share > 0:
            customer = first + 1 + rng.randrange(users - 1)
        else:
            customer = first + rng.randrange(users)
        numbers = [f"+4479{n:08d}" for n in rng.sample(range(10**8), options.recipients)]
        kind = "express" if rng.random() < options.express_ratio else "normal"
        body = encode({"customer_id": customer, "text": text, "recipients": numbers,
                       "type": kind})
        planned.append(b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
    return planned


# Running


class Accepted(msgspec.Struct):
    sms_identifier: str
    recipients: int


class Slot:
    """One connection of the pool, to one of the URLs; its connection's listener."""

    __slots__ = ("connection", "generator", "head", "idle_since", "pool", "started", "target")

    def __init__(self, generator: LoadGenerator, target: Target, pool: int) -> None:
        self.generator = generator
        self.target = target
        self.pool = pool  # the index of its URL
        self.head = target.request_head()
        self.connection: HttpConnection | None = None
        self.idle_since = 0.0
        self.started = 0.0  # latency origin of the request in flight

    def answered(self, status: int, body: bytes) -> None:
        self.generator.answered(self, status, body)

    def failed(self, error: RequestError) -> None:
        self.generator.failed(self, error)


class NoConnection(Exception):
    """Not one connection could be opened: nothing can be sent."""


class LoadGenerator:
    """Sends the planned requests over a pool of connections and counts the answers.

    Everything after the start runs in callbacks: the scheduler writes a due
    request on an idle connection (or queues it), and a connection's read
    callback records the answer and writes that connection's next request at
    once. Only (re)connecting runs in a task.
    """

    def __init__(self, options: Options, requests: list[bytes],
                 progress: ProgressLine | None = None) -> None:
        self.options = options
        self.requests = requests
        self.progress = progress
        targets = [Target.parse(url, ROUTE) for url in options.url]
        self.slots = [Slot(self, targets[i % len(targets)], i % len(targets))
                      for i in range(options.concurrency)]
        self.sent = 0
        self.ok = 0
        self.unsent = 0
        self.non_2xx: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.accepted_ids: list[str] = []
        self.accepted_recipients: list[int] = []
        self.in_flight = 0
        self.elapsed = 0.0
        self.cpu_s = 0.0  # this process's CPU time while sending
        self.stopping = False  # no new request is written
        # Idle connections per URL, each a stack: the one freed last is used first,
        # so a hot set stays warm while the rest idle.
        self._idle: list[list[Slot]] = [[] for _ in targets]
        self._turn = 0  # the URL whose turn it is to get the next due request
        self._backlog: deque[tuple[float, bytes]] = deque()  # due requests waiting for one
        self._connecting: set[asyncio.Task[None]] = set()  # reconnections under way
        self._reconnecting = 0  # the same, counted until each one hands its slot on
        self._loop = asyncio.get_running_loop()  # built inside the loop it runs in
        self._next = 0
        self._end = 0.0
        self._stopped = asyncio.Event()
        self._drained = asyncio.Event()
        self._decode = (msgspec.json.Decoder(Accepted).decode if options.wait_delivery
                        else None)

    @property
    def open_loop(self) -> bool:
        return self.options.rps > 0

    def stop(self) -> None:
        """End the sending phase now (SIGINT); what is in flight is awaited."""
        self._stopped.set()

    async def run(self) -> None:
        await self._connect_all()
        watchdog = asyncio.create_task(self._watchdog())
        cpu_before = _cpu_seconds()
        start = _now()
        self._end = start + self.options.duration
        reporter = asyncio.create_task(self._report_progress(start))
        try:
            if self.open_loop:
                phase = asyncio.create_task(self._schedule(start))
            else:
                idle = [slot for pool in self._idle for slot in pool]
                for pool in self._idle:
                    pool.clear()
                for slot in idle:
                    self._send(slot, None, self._next_request())
                phase = asyncio.create_task(asyncio.sleep(self._end - _now()))
            interrupted = asyncio.create_task(self._stopped.wait())
            await asyncio.wait({phase, interrupted}, return_when=asyncio.FIRST_COMPLETED)
            phase.cancel()
            interrupted.cancel()
            self.stopping = True
            self.unsent += len(self._backlog)  # due, but no connection came free in time
            self._backlog.clear()
            self._check_drained()
            await self._drained.wait()
            self.elapsed = _now() - start
            self.cpu_s = _cpu_seconds() - cpu_before
        finally:
            watchdog.cancel()
            reporter.cancel()
            for task in self._connecting:
                task.cancel()
            for slot in self.slots:
                if slot.connection is not None:
                    slot.connection.close()
        if self.progress is not None:
            self.progress.show(self._progress_text(self.elapsed, 0))
            self.progress.done()

    async def _connect_all(self) -> None:
        within = self.options.timeout
        results = await asyncio.gather(
            *(slot.target.connect(within, slot) for slot in self.slots), return_exceptions=True,
        )
        failures: list[tuple[Target, BaseException]] = []
        now = _now()
        for slot, result in zip(self.slots, results, strict=True):
            if isinstance(result, HttpConnection):
                slot.connection, slot.idle_since = result, now
            elif isinstance(result, Exception):
                failures.append((slot.target, result))
            else:
                raise result
            self._idle[slot.pool].append(slot)
        if len(failures) == len(self.slots):
            target, error = failures[0]
            raise NoConnection(f"cannot connect to {target.url}: {error}")
        for pool in self._idle:
            pool.reverse()  # the first slots first

    async def _schedule(self, start: float) -> None:
        rate, requests = self.options.rps, self.requests
        total = max(1, round(rate * self.options.duration))
        index = 0
        while index < total:
            due = min(total, int((_now() - start) * rate) + 1)
            while index < due:
                due_at = start + index / rate
                request = requests[index % len(requests)]
                index += 1
                slot = self._take_idle()
                if slot is not None:
                    self._send(slot, due_at, request)
                else:
                    self._backlog.append((due_at, request))
            if index < total:
                # Not under a millisecond: uvloop's timers would return at once (a busy
                # loop); requests dispatched late still count their latency from when due.
                await asyncio.sleep(max(MIN_SLEEP_S, start + index / rate - _now()))
        await asyncio.sleep(self._end - _now())  # the last one is due just before the end

    def _take_idle(self) -> Slot | None:
        """An idle connection, the URLs taking turns (skipping one with none free)."""
        pools = self._idle
        for step in range(len(pools)):
            index = (self._turn + step) % len(pools)
            if pools[index]:
                self._turn = index + 1
                return pools[index].pop()
        return None

    def _next_request(self) -> bytes:
        self._next += 1
        return self.requests[self._next % len(self.requests)]

    def _send(self, slot: Slot, due: float | None, request: bytes) -> None:
        """Write `request` on the slot's connection, reconnecting first if need be."""
        connection = slot.connection
        if connection is None or connection.closed or (
                _now() - slot.idle_since > IDLE_REUSE_S):
            if connection is not None:
                connection.close()
            slot.connection = None
            self._reconnecting += 1
            task = self._loop.create_task(self._reconnect(slot, due, request))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
            return
        connection.send(slot.head + request)
        self.sent += 1
        self.in_flight += 1
        slot.started = connection.sent_at if due is None else due

    async def _reconnect(self, slot: Slot, due: float | None, request: bytes) -> None:
        try:
            slot.connection = await slot.target.connect(self.options.timeout, slot)
        except ConnectFailed:
            self.errors[ConnectFailed.kind] += 1  # the request in hand is not sent
            await asyncio.sleep(CONNECT_RETRY_S)  # no busy loop on a dead server
            self._reconnecting -= 1
            self._release(slot)
            return
        self._reconnecting -= 1
        slot.idle_since = _now()
        if self.stopping:
            self.unsent += 1
            self._release(slot)
        else:
            self._send(slot, due, request)

    def answered(self, slot: Slot, status: int, body: bytes) -> None:
        now = slot.idle_since = _now()
        self.in_flight -= 1
        if 200 <= status < 300:
            self.ok += 1
            self.latencies.append(now - slot.started)
            if self._decode is not None:
                try:
                    accepted = self._decode(body)
                except msgspec.DecodeError:
                    self.errors["bad_body"] += 1
                else:
                    self.accepted_ids.append(accepted.sms_identifier)
                    self.accepted_recipients.append(accepted.recipients)
        else:
            self.non_2xx[status] += 1
        self._release(slot)

    def failed(self, slot: Slot, error: RequestError) -> None:
        self.in_flight -= 1
        self.errors[error.kind] += 1
        self._release(slot)

    def _release(self, slot: Slot) -> None:
        """The slot is free: give it the next request, or make it idle."""
        if not self.stopping:
            if not self.open_loop:
                if _now() < self._end:
                    self._send(slot, None, self._next_request())
                    return
            elif self._backlog:
                due, request = self._backlog.popleft()
                self._send(slot, due, request)
                return
        self._idle[slot.pool].append(slot)
        self._check_drained()

    def _check_drained(self) -> None:
        if self.stopping and self.in_flight == 0 and self._reconnecting == 0:
            self._drained.set()

    async def _watchdog(self) -> None:
        timeout = self.options.timeout
        while True:
            await asyncio.sleep(min(0.25, timeout / 4))
            now = _now()
            for slot in self.slots:
                connection = slot.connection
                if connection is not None and connection.busy and (
                        now - connection.sent_at > timeout):
                    connection.abort(RequestTimeout(f"no answer within {timeout:g} s"))

    async def _report_progress(self, start: float) -> None:
        if self.progress is None:
            return
        last_ok, tick = 0, start
        while True:
            tick += 1.0
            await asyncio.sleep(max(0.0, tick - _now()))
            self.progress.show(self._progress_text(_now() - start,
                                                   self.ok - last_ok))
            last_ok = self.ok

    def _progress_text(self, elapsed: float, ok_last_second: int) -> str:
        return (f"{elapsed:6.1f} s  sent {self.sent}  ok {self.ok}  "
                f"non-2xx {sum(self.non_2xx.values())}  errors {sum(self.errors.values())}  "
                f"| {ok_last_second} ok/s  {self.in_flight} in flight  "
                f"{len(self._backlog)} queued")

    def document(self) -> dict[str, Any]:
        elapsed = self.elapsed or 1e-9
        config = asdict(self.options)
        config.pop("json")
        return {
            "config": config,
            "sent": self.sent,
            "ok": self.ok,
            "unsent": self.unsent,
            "non_2xx": {str(code): n for code, n in sorted(self.non_2xx.items())},
            "errors": dict(sorted(self.errors.items())),
            "elapsed_s": round(self.elapsed, 3),
            "achieved_rps": round(self.ok / elapsed, 3),
            "recipients_per_s": round(self.ok * self.options.recipients / elapsed, 3),
            "latency_ms": percentiles_ms(self.latencies),
            "latency_from": "schedule" if self.open_loop else "send",
            "generator_cpu_s": round(self.cpu_s, 3),
            "generator_cpu_percent": round(100 * self.cpu_s / elapsed, 1),
            "delivery": None,
        }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ProgressLine:
    """A status line on stderr: rewritten in place on a terminal, one line a tick otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._width = 0

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
        self._width = 0


async def run(options: Options, database_url: str | None = None) -> dict[str, Any]:
    """Run the load test and return the report's document; raises NoConnection."""
    from smsgw_app.loadtest.delivery import wait_for_delivery

    rng = random.Random(options.seed)
    count = (min(MAX_PLANNED, max(1, round(options.rps * options.duration)))
             if options.rps > 0 else CLOSED_LOOP_PLANNED)
    progress = ProgressLine()
    generator = LoadGenerator(options, plan_requests(options, count, rng), progress)
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
