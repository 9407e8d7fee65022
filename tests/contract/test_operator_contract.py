"""One suite, every operator adapter: the in-process SimulatedOperator and the
HttpOperator talking to the real HTTP simulator on a free port.

Timeouts, unreachable operators and duplicate references exist only over HTTP;
those tests run against the HTTP backend alone. The status-code mapping is
pinned with httpx.MockTransport (a fake server, not a mock of our code).
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

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


async def test_a_resent_reference_gets_the_same_message_id() -> None:
    state = SimulatorState("A")
    async with running_simulator(state) as url, operator_http_client() as client:
        operator = HttpOperator("A", url, client, 2.0)
        first, second = await asyncio.gather(operator.send(SMS), operator.send(SMS))
        third = await operator.send(SMS)
        stats = (await client.get(f"{url}/stats")).json()
    assert first == second == third
    assert stats == {"accepted": 1, "duplicates": 2, "failed": 0, "rejected": 0}


async def test_control_takes_the_operator_down_and_back() -> None:
    state = SimulatorState("A")
    async with running_simulator(state) as url, operator_http_client() as client:
        operator = HttpOperator("A", url, client, 2.0)
        down = await client.post(f"{url}/control", json={"fail_rate": 1.0})
        error = await failure(operator.send(SMS))
        await client.post(f"{url}/control", json={"fail_rate": 0.0})
        message_id = await operator.send(SMS)
        refused = await client.post(f"{url}/control", json={"fail_rate": 1.5})
    assert down.json()["fail_rate"] == 1.0
    assert error.transient and "503" in error.reason
    assert message_id.startswith("A-")
    assert refused.status_code == 400 and state.fail_rate == 0.0


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
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        error = await failure(HttpOperator("A", "http://operator", client).send(SMS))
    assert error.error_class is error_class
    assert f"HTTP {status}" in error.reason


async def test_the_request_follows_the_protocol() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"message_id": "op-1"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        message_id = await HttpOperator("A", "http://operator/v1/", client).send(SMS)
    assert message_id == "op-1"
    assert seen[0].method == "POST" and str(seen[0].url) == "http://operator/v1/send"
    assert httpx.Response(200, content=seen[0].content).json() == {
        "to": SMS.recipient, "text": SMS.text, "reference": SMS.reference,
    }


async def test_a_long_error_body_is_cut_short() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="x" * 10_000)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        error = await failure(HttpOperator("A", "http://operator", client).send(SMS))
    assert len(error.reason) < 200


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
