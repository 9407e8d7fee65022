"""The load generator: open and closed loop over a pool of connections, and the counts.

Open loop (``--rps R``): request i is due at start + i/R whatever happened to
the ones before; a due request goes to a free connection (the one freed last,
so a hot set of connections stays warm while the rest idle) or waits in line
for one. Its latency counts from the moment it was due, so time spent queued
in the generator is part of it (no coordinated omission).
Closed loop (``--rps 0``): every connection sends back to back; latency counts
from the send. Requests are built and serialized before the clock starts.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter, deque
from dataclasses import asdict
from typing import Any

import msgspec

from smsgw_app.loadtest.client import ConnectFailed, RequestError, RequestTimeout, Target
from smsgw_app.loadtest.options import ROUTE, Options
from smsgw_app.loadtest.pool import ConnectionPool, Slot
from smsgw_app.loadtest.progress import ProgressLine
from smsgw_app.loadtest.report import percentiles_ms

IDLE_REUSE_S = 4.0  # reconnect rather than reuse a connection idle this long (uvicorn drops at 5)
CONNECT_RETRY_S = 0.1
MIN_SLEEP_S = 0.001  # the timers' resolution

# Every timestamp: uvloop's loop.time() is in whole milliseconds, cached per turn.
_now = time.monotonic


class SendAnswer(msgspec.Struct):
    """What the generator reads of a 2xx answer to POST /sms/send, to watch its delivery."""

    sms_identifier: str
    recipients: int


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
        self.pool = ConnectionPool(self, [Target.parse(url, ROUTE) for url in options.url],
                                   options.concurrency)
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
        self._backlog: deque[tuple[float, bytes]] = deque()  # due requests waiting for one
        self._connecting: set[asyncio.Task[None]] = set()  # reconnections under way
        self._reconnecting = 0  # the same, counted until each one hands its slot on
        self._loop = asyncio.get_running_loop()  # built inside the loop it runs in
        self._next = 0
        self._end = 0.0
        self._stopped = asyncio.Event()
        self._drained = asyncio.Event()
        self._decode = (msgspec.json.Decoder(SendAnswer).decode if options.wait_delivery
                        else None)

    @property
    def open_loop(self) -> bool:
        return self.options.rps > 0

    def stop(self) -> None:
        """End the sending phase now (SIGINT); what is in flight is awaited."""
        self._stopped.set()

    async def run(self) -> None:
        await self.pool.connect_all(self.options.timeout)
        watchdog = asyncio.create_task(self._watchdog())
        cpu_before = _cpu_seconds()
        start = _now()
        self._end = start + self.options.duration
        reporter = asyncio.create_task(self._report_progress(start))
        try:
            if self.open_loop:
                phase = asyncio.create_task(self._schedule(start))
            else:
                for slot in self.pool.take_all_idle():
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
            self.pool.close()
        if self.progress is not None:
            self.progress.show(self._progress_text(self.elapsed, 0))
            self.progress.done()

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
                slot = self.pool.take_idle()
                if slot is not None:
                    self._send(slot, due_at, request)
                else:
                    self._backlog.append((due_at, request))
            if index < total:
                # Not under a millisecond: uvloop's timers would return at once (a busy
                # loop); requests dispatched late still count their latency from when due.
                await asyncio.sleep(max(MIN_SLEEP_S, start + index / rate - _now()))
        await asyncio.sleep(self._end - _now())  # the last one is due just before the end

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
                    answer = self._decode(body)
                except msgspec.DecodeError:
                    self.errors["bad_body"] += 1
                else:
                    self.accepted_ids.append(answer.sms_identifier)
                    self.accepted_recipients.append(answer.recipients)
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
        self.pool.put_idle(slot)
        self._check_drained()

    def _check_drained(self) -> None:
        if self.stopping and self.in_flight == 0 and self._reconnecting == 0:
            self._drained.set()

    async def _watchdog(self) -> None:
        timeout = self.options.timeout
        while True:
            await asyncio.sleep(min(0.25, timeout / 4))
            now = _now()
            for slot in self.pool.slots:
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
