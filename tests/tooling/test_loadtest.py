"""The load generator's parts: percentiles, the request mix, the HTTP client, the loops."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from smsgw_adapters.sql.seed import RecipientRow
from smsgw_app.loadtest.client import HttpConnection, RequestError, Target
from smsgw_app.loadtest.delivery import summarize
from smsgw_app.loadtest.generator import LoadGenerator
from smsgw_app.loadtest.mix import plan_requests
from smsgw_app.loadtest.options import OptionError, Options
from smsgw_app.loadtest.report import human, percentiles_ms

OK_BODY = b'{"sms_identifier":"abc","status":"processing","segments":1,"cost":1,"recipients":1}'


def test_percentiles_are_nearest_rank_in_ms_and_ordered() -> None:
    figures = percentiles_ms([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert figures == {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles_ms([0.004]) == {k: 4.0 for k in ("p50", "p90", "p95", "p99", "max")}
    assert set(percentiles_ms([]).values()) == {None}


def _bodies(options: Options, count: int) -> list[dict[str, object]]:
    planned = plan_requests(options, count, random.Random(7))
    bodies = []
    for request in planned:
        head, body = request.split(b"\r\n\r\n", 1)
        assert head == b"Content-Length: %d" % len(body)
        bodies.append(json.loads(body))
    return bodies


def test_the_request_mix_follows_the_options() -> None:
    options = Options(users=10, first_user=100, hot_share=0.5, recipients=3,
                      express_ratio=0.2, text="hi")
    bodies = _bodies(options, 4000)

    customers = Counter(b["customer_id"] for b in bodies)
    assert set(customers) == set(range(100, 110))
    assert 0.45 < customers[100] / 4000 < 0.55  # the hot customer
    assert 0.15 < sum(b["type"] == "express" for b in bodies) / 4000 < 0.25
    for body in bodies:
        recipients = body["recipients"]
        assert isinstance(recipients, list) and len(set(recipients)) == 3
        assert all(r.startswith("+4479") and len(r) == 13 and r[1:].isdigit()
                   for r in recipients)
        assert body["text"] == "hi"


def test_without_a_hot_customer_every_customer_is_equally_likely() -> None:
    customers = Counter(b["customer_id"] for b in _bodies(Options(users=4), 4000))
    assert set(customers) == {1, 2, 3, 4}
    assert all(800 < n < 1200 for n in customers.values())


@pytest.mark.parametrize("change", [
    {"hot_share": 1.5}, {"express_ratio": -0.1}, {"rps": -1.0}, {"duration": 0.0},
    {"concurrency": 0}, {"users": 0}, {"recipients": 1001}, {"url": ["localhost:8080"]},
])
def test_bad_options_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Options(**change).check()  # type: ignore[arg-type]
    assert issubclass(OptionError, ValueError)


class Recorder:
    def __init__(self) -> None:
        self.answers: list[tuple[int, bytes]] = []
        self.errors: list[RequestError] = []
        self.event = asyncio.Event()

    def answered(self, status: int, body: bytes) -> None:
        self.answers.append((status, body))
        self.event.set()

    def failed(self, error: RequestError) -> None:
        self.errors.append(error)
        self.event.set()


@asynccontextmanager
async def raw_server(
    answer: Callable[[bytes], bytes | None], delay: Callable[[], float] = lambda: 0.0,
) -> AsyncIterator[int]:
    """A server that reads each request (head + Content-Length body) and writes answer(it).

    It waits delay() seconds before each answer; None closes the connection.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                pause = delay()
                if pause:
                    await asyncio.sleep(pause)
                reply = answer(head + body)
                if reply is None:
                    writer.close()
                    return
                for i in range(0, len(reply), 7):  # in small pieces, to exercise buffering
                    writer.write(reply[i:i + 7])
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


def ok_answer(_: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(OK_BODY), OK_BODY)


async def _exchange(port: int, answer: Recorder, count: int = 1) -> HttpConnection:
    target = Target.parse(f"http://127.0.0.1:{port}", "/sms/send")
    connection = await target.connect(2, answer)
    for _ in range(count):
        answer.event.clear()
        connection.send(target.request_head() + b"Content-Length: 2\r\n\r\n{}")
        await asyncio.wait_for(answer.event.wait(), 2)
    return connection


async def test_the_client_reads_content_length_and_chunked_answers_on_one_connection() -> None:
    replies = iter([
        ok_answer(b""),
        b"HTTP/1.1 402 Payment Required\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
    ])
    recorder = Recorder()
    async with raw_server(lambda _: next(replies)) as port:
        connection = await _exchange(port, recorder, count=3)
    assert recorder.answers == [(200, OK_BODY), (402, b'{"a": 1}'), (200, b"")]
    assert recorder.errors == []
    assert connection.closed  # Connection: close is honoured


async def test_a_connection_closed_mid_request_is_a_closed_error() -> None:
    recorder = Recorder()
    async with raw_server(lambda _: None) as port:
        await _exchange(port, recorder)
    assert [e.kind for e in recorder.errors] == ["closed"] and recorder.answers == []


async def test_an_answer_that_is_not_http_is_a_protocol_error() -> None:
    recorder = Recorder()
    async with raw_server(lambda _: b"SSH-2.0-OpenSSH\r\n\r\n") as port:
        await _exchange(port, recorder)
    assert [e.kind for e in recorder.errors] == ["protocol"]


async def test_open_loop_sends_at_the_rate_and_counts_from_the_schedule() -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> bytes:
        seen.append(request)
        return ok_answer(request)

    async with raw_server(answer) as port:
        options = Options(url=[f"http://127.0.0.1:{port}"], rps=200, duration=0.5,
                          concurrency=4, users=3, wait_delivery=True)
        generator = LoadGenerator(options, plan_requests(options, 100, random.Random(1)))
        await generator.run()

    assert generator.sent == generator.ok == 100 == len(seen)
    assert generator.unsent == 0 and not generator.errors and not generator.non_2xx
    assert 0.45 < generator.elapsed < 1.0
    assert generator.accepted_ids == ["abc"] * 100
    document = generator.document()
    assert document["latency_from"] == "schedule"
    assert seen[0].startswith(b"POST /sms/send HTTP/1.1\r\nHost: 127.0.0.1:")
    assert json.loads(seen[0].split(b"\r\n\r\n", 1)[1])["customer_id"] in (1, 2, 3)
    assert "open loop at 200 req/s" in human(document)


async def test_requests_take_turns_over_the_urls() -> None:
    counts = Counter[str]()

    def counting(name: str) -> Callable[[bytes], bytes]:
        def answer(request: bytes) -> bytes:
            counts[name] += 1
            return ok_answer(request)
        return answer

    async with raw_server(counting("a")) as a, raw_server(counting("b")) as b:
        options = Options(url=[f"http://127.0.0.1:{a}", f"http://127.0.0.1:{b}/"], rps=200,
                          duration=0.2, concurrency=8)
        generator = LoadGenerator(options, plan_requests(options, 40, random.Random(1)))
        await generator.run()
    assert generator.ok == 40 and counts == {"a": 20, "b": 20}


async def test_open_loop_latency_includes_waiting_for_a_connection() -> None:
    delays = iter([0.2] + [0.0] * 100)  # the server stalls on the first request

    async with raw_server(ok_answer, lambda: next(delays)) as port:
        options = Options(url=[f"http://127.0.0.1:{port}"], rps=100, duration=0.3,
                          concurrency=1, users=1)
        generator = LoadGenerator(options, plan_requests(options, 30, random.Random(1)))
        await generator.run()
    # Requests due during the stall waited for the one connection: their latency
    # counts from when they were due, so the queueing shows (no coordinated omission).
    assert generator.ok == 30
    queued_behind = sorted(generator.latencies)[-5:]
    assert all(latency > 0.1 for latency in queued_behind), generator.latencies


async def test_closed_loop_sends_back_to_back_until_the_end() -> None:
    async with raw_server(ok_answer) as port:
        options = Options(url=[f"http://127.0.0.1:{port}"], rps=0, duration=0.3,
                          concurrency=3)
        generator = LoadGenerator(options, plan_requests(options, 50, random.Random(1)))
        await generator.run()
    assert generator.ok == generator.sent > 10 and not generator.errors
    assert generator.document()["latency_from"] == "send"


async def test_a_server_that_does_not_answer_times_out() -> None:
    async with raw_server(lambda _: b"") as port:  # reads the request, answers nothing
        options = Options(url=[f"http://127.0.0.1:{port}"], rps=10, duration=0.1,
                          concurrency=1, timeout=0.2)
        generator = LoadGenerator(options, plan_requests(options, 1, random.Random(1)))
        await generator.run()
    assert generator.sent == 1 and generator.ok == 0
    assert generator.errors == {"timeout": 1}


def test_delivery_figures_per_type() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def row(kind: str, status: str, created: float, updated: float) -> RecipientRow:
        return RecipientRow("s", kind, status, t0 + timedelta(seconds=created),
                                t0 + timedelta(seconds=updated))

    rows = [row("express", "DONE", 0, 1), row("express", "FAILED", 0, 2),
            row("normal", "DONE", 1, 4), row("normal", "PENDING", 2, 2)]
    figures = summarize(rows, expected=5)
    assert (figures["delivered"], figures["failed"], figures["unfinished"]) == (2, 1, 2)
    assert figures["delivered_per_s"] == 0.75  # 3 terminal over 0 s .. 4 s
    assert figures["latency_ms"]["express"]["count"] == 2
    assert figures["latency_ms"]["express"]["max"] == 2000.0
    assert figures["latency_ms"]["normal"] == {"p50": 3000.0, "p90": 3000.0, "p95": 3000.0,
                                               "p99": 3000.0, "max": 3000.0, "count": 1}
