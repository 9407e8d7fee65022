"""One suite, every operator adapter: the in-process SimulatedOperator and the
HttpOperator talking to the real HTTP simulator on a free port.

Timeouts, unreachable operators and duplicate references exist only over HTTP;
those tests run against the HTTP backend alone. The status-code mapping is
pinned with aiohttp's RawTestServer (a fake server, not a mock of our code).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from smsgw_adapters.observability import tracing
from smsgw_adapters.operators.http import HttpOperator, operator_http_client
from smsgw_adapters.operators.simulated import SimulatedOperator
from smsgw_adapters.operators.simulator_server import SimulatorState, running_simulator
from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms
from smsgw_core.ports import Operator

SMS = OutgoingSms("+989120000001", "hello ✓", "sms-1:+989120000001")

MakeOperator = Callable[..., AbstractAsyncContextManager[Operator]]


@asynccontextmanager
async def simulated(
    *, fail_rate: float = 0.0, latency_ms: float = 0.0, reject_prefix: str = "",
    timeout_s: float = 2.0,
) -> AsyncIterator[Operator]:
    yield SimulatedOperator(
        "A", fail_rate=fail_rate, latency_ms=latency_ms, reject_prefix=reject_prefix
    )


@asynccontextmanager
async def over_http(
    *, fail_rate: float = 0.0, latency_ms: float = 0.0, reject_prefix: str = "",
    timeout_s: float = 2.0,
) -> AsyncIterator[Operator]:
    state = SimulatorState("A", fail_rate, latency_ms, reject_prefix)
    async with running_simulator(state) as url, operator_http_client() as client:
        yield HttpOperator("A", url, client, timeout_s)


@pytest.fixture(params=[simulated, over_http], ids=["simulated", "http"])
def make_operator(request: pytest.FixtureRequest) -> MakeOperator:
    return request.param  # type: ignore[no-any-return]


async def get_json(client: aiohttp.ClientSession, url: str, **json_body: Any) -> Any:
    """GET `url`, or POST `json_body` to it when given; the answer's JSON."""
    request = client.post(url, json=json_body) if json_body else client.get(url)
    async with request as response:
        return await response.json()


@asynccontextmanager
async def fake_operator(
    handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A real HTTP server on a free port answering every request with `handler`."""
    async with RawTestServer(handler) as server:
        yield str(server.make_url("")).rstrip("/")


def answering(status: int, body: str) -> Callable[[web.BaseRequest], Awaitable[web.Response]]:
    async def answer(request: web.BaseRequest) -> web.Response:
        await request.read()
        return web.Response(status=status, text=body)

    return answer


async def failure(send: Awaitable[str]) -> OperatorError:
    with pytest.raises(OperatorError) as caught:
        await send
    return caught.value


async def test_a_send_returns_the_operators_message_id(make_operator: MakeOperator) -> None:
    async with make_operator() as operator:
        first = await operator.send(SMS)
        second = await operator.send(OutgoingSms("+989120000002", "hi", "sms-1:+989120000002"))
    assert first.startswith("A-") and second.startswith("A-")
    assert first != second
    assert operator.name == "A"


async def test_a_refused_number_is_permanent(make_operator: MakeOperator) -> None:
    async with make_operator(reject_prefix="+98912") as operator:
        error = await failure(operator.send(SMS))
    assert error.error_class is ErrorClass.PERMANENT
    assert error.operator == "A"


async def test_an_outage_is_transient(make_operator: MakeOperator) -> None:
    async with make_operator(fail_rate=1.0) as operator:
        error = await failure(operator.send(SMS))
    assert error.error_class is ErrorClass.TRANSIENT


async def test_an_answer_slower_than_the_timeout_is_transient() -> None:
    async with over_http(latency_ms=400, timeout_s=0.1) as operator:
        error = await failure(operator.send(SMS))
    assert error.error_class is ErrorClass.TRANSIENT
    assert "timeout" in error.reason


async def test_an_unreachable_operator_is_transient() -> None:
    with socket.socket() as bound_not_listening:  # holds a free port that refuses connections
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        async with operator_http_client(connect_timeout_s=0.5) as client:
            operator = HttpOperator("A", f"http://127.0.0.1:{port}", client, 0.5)
            error = await failure(operator.send(SMS))
    assert error.error_class is ErrorClass.TRANSIENT


async def test_a_connection_dropped_before_the_answer_is_transient() -> None:
    async def hang_up(request: web.BaseRequest) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=200)

    async with fake_operator(hang_up) as url, operator_http_client() as client:
        error = await failure(HttpOperator("A", url, client).send(SMS))
    assert error.transient and "ServerDisconnectedError" in error.reason


async def test_a_resent_reference_gets_the_same_message_id() -> None:
    state = SimulatorState("A")
    async with running_simulator(state) as url, operator_http_client() as client:
        operator = HttpOperator("A", url, client, 2.0)
        first, second = await asyncio.gather(operator.send(SMS), operator.send(SMS))
        third = await operator.send(SMS)
        stats = await get_json(client, f"{url}/stats")
    assert first == second == third
    assert stats == {"accepted": 1, "duplicates": 2, "failed": 0, "rejected": 0}


async def test_references_lists_each_accepted_reference_once() -> None:
    state = SimulatorState("A", reject_prefix="+98999")
    async with running_simulator(state) as url, operator_http_client() as client:
        operator = HttpOperator("A", url, client, 2.0)
        for sms in (SMS, SMS, OutgoingSms("+989120000002", "hi", "sms-2:+989120000002")):
            await operator.send(sms)
        await failure(operator.send(OutgoingSms("+989990000001", "hi", "sms-3:+989990000001")))
        references = await get_json(client, f"{url}/references")
    assert references == {"accepted": ["sms-1:+989120000001", "sms-2:+989120000002"]}


async def test_control_takes_the_operator_down_and_back() -> None:
    state = SimulatorState("A")
    async with running_simulator(state) as url, operator_http_client() as client:
        operator = HttpOperator("A", url, client, 2.0)
        down = await get_json(client, f"{url}/control", fail_rate=1.0)
        error = await failure(operator.send(SMS))
        await get_json(client, f"{url}/control", fail_rate=0.0)
        message_id = await operator.send(SMS)
        async with client.post(f"{url}/control", json={"fail_rate": 1.5}) as refused:
            refused_status = refused.status
    assert down["fail_rate"] == 1.0
    assert error.transient and "503" in error.reason
    assert message_id.startswith("A-")
    assert refused_status == 400 and state.fail_rate == 0.0


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (400, '{"error": "bad number"}', ErrorClass.PERMANENT),
        (422, '{"error": "invalid number"}', ErrorClass.PERMANENT),
        (404, "no such route", ErrorClass.PERMANENT),
        (408, "", ErrorClass.TRANSIENT),
        (429, "slow down", ErrorClass.TRANSIENT),
        (500, "boom", ErrorClass.TRANSIENT),
        (503, "maintenance", ErrorClass.TRANSIENT),
        (200, "not json", ErrorClass.TRANSIENT),
        (200, '{"id": "x"}', ErrorClass.TRANSIENT),
        (302, "", ErrorClass.TRANSIENT),
    ],
)
async def test_status_codes_map_to_error_classes(
    status: int, body: str, error_class: ErrorClass
) -> None:
    async with fake_operator(answering(status, body)) as url, operator_http_client() as client:
        error = await failure(HttpOperator("A", url, client).send(SMS))
    assert error.error_class is error_class
    assert f"HTTP {status}" in error.reason


async def test_a_redirect_is_not_followed() -> None:
    calls: list[str] = []

    async def redirect(request: web.BaseRequest) -> web.Response:
        calls.append(request.path)
        return web.Response(status=307, headers={"Location": "/elsewhere"})

    async with fake_operator(redirect) as url, operator_http_client() as client:
        error = await failure(HttpOperator("A", url, client).send(SMS))
    assert error.transient and "HTTP 307" in error.reason
    assert calls == ["/send"]


async def test_the_request_follows_the_protocol() -> None:
    seen: list[tuple[str, str, str, bytes]] = []

    async def answer(request: web.BaseRequest) -> web.Response:
        seen.append((request.method, request.path, request.content_type, await request.read()))
        return web.json_response({"message_id": "op-1"})

    async with fake_operator(answer) as url, operator_http_client() as client:
        message_id = await HttpOperator("A", f"{url}/v1/", client).send(SMS)
    assert message_id == "op-1"
    ((method, path, content_type, body),) = seen
    assert (method, path, content_type) == ("POST", "/v1/send", "application/json")
    assert json.loads(body) == {
        "to": SMS.recipient, "text": SMS.text, "reference": SMS.reference,
    }


async def test_a_long_error_body_is_cut_short() -> None:
    async with (
        fake_operator(answering(500, "x" * 10_000)) as url,
        operator_http_client() as client,
    ):
        error = await failure(HttpOperator("A", url, client).send(SMS))
    assert len(error.reason) < 200
    assert error.reason.startswith("HTTP 500: xxx") and error.reason.endswith("…")


async def test_an_error_body_in_its_own_charset_is_read() -> None:
    async def latin1(request: web.BaseRequest) -> web.Response:
        return web.Response(status=422, body="número inválido".encode("latin-1"),
                            content_type="text/plain", charset="latin-1")

    async with fake_operator(latin1) as url, operator_http_client() as client:
        error = await failure(HttpOperator("A", url, client).send(SMS))
    assert error.error_class is ErrorClass.PERMANENT
    assert error.reason == "HTTP 422: número inválido"


async def test_each_try_is_a_client_span_whose_context_the_operator_gets(
    spans: InMemorySpanExporter,
) -> None:
    headers: list[str | None] = []

    async def answer(request: web.BaseRequest) -> web.Response:
        headers.append(request.headers.get("traceparent"))
        if len(headers) == 1:
            return web.json_response({"message_id": "op-1"})
        return web.Response(status=503, text="busy")

    async with fake_operator(answer) as url, operator_http_client() as client:
        operator = tracing.TracedOperator(HttpOperator("A", url, client))
        await operator.send(SMS)
        await failure(operator.send(SMS))
    sent, failed = (s for s in spans.get_finished_spans() if s.name == tracing.OPERATOR_SPAN)
    assert sent.attributes is not None and failed.attributes is not None
    assert sent.attributes["http.response.status_code"] == 200
    assert failed.attributes["http.response.status_code"] == 503
    for span, traceparent in zip((sent, failed), headers, strict=True):
        assert traceparent is not None
        _, trace_id, span_id, _ = traceparent.split("-")
        assert (int(trace_id, 16), int(span_id, 16)) == (
            span.context.trace_id, span.context.span_id
        )


async def test_a_burst_waits_for_the_pool_without_failing() -> None:
    """Waiting for a free pooled connection is the gateway's congestion, not the
    operator's failure: 300 sends over 4 connections, each answered in 30 ms,
    take several times the 0.5 s answer timeout in all, and every one succeeds."""
    in_flight = peak = 0

    async def slow(request: web.BaseRequest) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            reference = json.loads(await request.read())["reference"]
            await asyncio.sleep(0.03)
            return web.json_response({"message_id": f"op-{reference}"})
        finally:
            in_flight -= 1

    burst = [OutgoingSms(f"+98912{n:07d}", "hi", f"sms-b:{n}") for n in range(300)]
    async with (
        fake_operator(slow) as url,
        # A generous connect timeout: on a busy machine the four connects, made
        # while 300 sends start at once, may wait long for the event loop.
        operator_http_client(
            timeout_s=0.5, connect_timeout_s=10, max_connections_per_host=4
        ) as client,
    ):
        operator = HttpOperator("A", url, client)
        started = time.monotonic()
        results = await asyncio.gather(*(operator.send(sms) for sms in burst),
                                       return_exceptions=True)
        elapsed = time.monotonic() - started
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert results == [f"op-{sms.reference}" for sms in burst]
    assert peak == 4  # the pool was the limit
    assert elapsed > 1.5  # 300 / 4 x 30 ms = 2.25 s: most sends waited longer than 0.5 s


@pytest.mark.slow
def test_the_simulator_runs_as_a_process() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "smsgw_adapters.operators.simulator_server",
         "--name", "B", "--port", "0", "--reject-prefix", "+1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        assert match, line
        url = match.group(1)
        with httpx.Client(timeout=5) as client:
            sent = client.post(f"{url}/send", json={"to": "+98", "text": "t", "reference": "r"})
            refused = client.post(f"{url}/send", json={"to": "+1", "text": "t", "reference": "s"})
            stats = client.get(f"{url}/stats").json()
        assert sent.status_code == 200 and sent.json()["message_id"].startswith("B-")
        assert refused.status_code == 422
        assert stats["accepted"] == 1 and stats["rejected"] == 1
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=10)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.returncode in (0, -signal.SIGTERM)
        assert "Traceback" not in errors
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
