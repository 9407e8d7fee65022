"""The gateway's logs: JSON lines, a request's lines carry its trace id, nothing personal at INFO.

Tracing is on (OTLP to the test's collector) so that there are trace ids to carry.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.harness import Gateway, GatewayFactory, wait_until
from tests.integration.otlp import Collector, otlp_collector, tracing_env

pytestmark = pytest.mark.slow

NUMBER = "+989121234567"
MASKED = "+98912****567"
TEXT = "Your secret code is 4711"


@pytest.fixture
def collector() -> Iterator[Collector]:
    with otlp_collector() as collector:
        yield collector


def log_lines(gateway: Gateway) -> list[dict[str, Any]]:
    """Every line the gateway's processes wrote, each parsed as JSON (or the test fails)."""
    parsed = []
    for number, line in enumerate(gateway.logs().splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


@pytest.mark.parametrize("mode", ["embedded", "split"])
def test_logs_are_json_carry_the_trace_and_hide_numbers_and_text(
    make_gateway: GatewayFactory, collector: Collector, user_id: int
) -> None:
    # Both operators refuse one of the numbers: its lines (INFO) are the worker's
    # for this SMS; a sent recipient's line is DEBUG, below the default level.
    refuse = "A=sim://?reject_prefix=0912858,B=sim://?reject_prefix=0912858"
    gateway = make_gateway(refuse, **tracing_env(collector))
    gateway.top_up(user_id, 100)
    trace_id = uuid.uuid4().hex
    with gateway.client() as client:
        response = client.post(
            "/sms/send", headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
            json={"customer_id": user_id, "text": TEXT, "recipients": [NUMBER, "09128582812"]},
        )
    assert response.status_code == 200, response.text
    sms_identifier = response.json()["sms_identifier"]
    gateway.wait_terminal(sms_identifier, user_id)

    def delivery_lines() -> list[dict[str, Any]] | None:
        found = [line for line in log_lines(gateway) if line.get("logger") == "smsgw.delivery"
                 and line.get("sms_identifier") == sms_identifier]
        return found or None

    sent = wait_until(delivery_lines, timeout=15)
    gateway.stop()  # the shutdown lines must be JSON too
    lines = log_lines(gateway)

    for line in lines:
        assert {"timestamp", "level", "logger", "message", "trace_id", "span_id"} <= set(line)
    assert {line["level"] for line in lines} <= {"INFO", "WARNING", "ERROR"}
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # no handler of its own

    # The request's line, and the worker's lines for its SMS, are in the client's trace.
    (accepted,) = [line for line in lines if line["message"] == "sms accepted"
                   and line.get("sms_identifier") == sms_identifier]
    assert accepted["trace_id"] == trace_id and len(accepted["span_id"]) == 16
    assert accepted["user_id"] == user_id
    assert accepted["recipients"] == 2
    assert accepted["text"] == f"[{len(TEXT)} chars]"
    assert {line["trace_id"] for line in sent} == {trace_id}
    assert [(line["recipient"], line["outcome"]) for line in sent] == [
        ("0912****812", "permanent")]  # the refused one, masked; the sent one is not logged
    assert not any(line["message"] == "sms sent" for line in lines)
    # Lines outside any request have no trace.
    assert any(line["trace_id"] == "" for line in lines)

    raw = gateway.logs()
    assert NUMBER not in raw and NUMBER[1:] not in raw and "09128582812" not in raw
    assert TEXT not in raw and "secret code" not in raw


@pytest.mark.parametrize("mode", ["embedded"])
def test_text_format_for_development(make_gateway: GatewayFactory, user_id: int) -> None:
    gateway = make_gateway(SMSGW_LOG_FORMAT="text")
    gateway.top_up(user_id, 10)
    with gateway.client() as client:
        response = client.post("/sms/send", json={
            "customer_id": user_id, "text": TEXT, "recipients": [NUMBER],
        })
    assert response.status_code == 200
    gateway.wait_terminal(response.json()["sms_identifier"], user_id)
    gateway.stop()
    raw = gateway.logs()
    accepted = [line for line in raw.splitlines() if "sms accepted" in line]
    assert len(accepted) == 1
    assert " INFO " in accepted[0] and "smsgw.api:" in accepted[0]
    assert f'text="[{len(TEXT)} chars]"' in accepted[0]
    assert NUMBER not in raw and TEXT not in raw
