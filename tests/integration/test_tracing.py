"""One trace per message: API, relay, worker and operator spans share the trace id.

Gateways run as real processes exporting with OTLP/HTTP to the test's collector
(tests/integration/otlp.py), in embedded mode (one process, in-process bus,
simulated operators) and split mode (api, relay and worker processes over
RabbitMQ, with an HTTP operator that records the headers it is sent).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.integration.harness import GatewayFactory, wait_until
from tests.integration.otlp import CollectedSpan, Collector, otlp_collector, tracing_env

pytestmark = pytest.mark.slow

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5
ERROR = 2


@pytest.fixture
def collector() -> Iterator[Collector]:
    with otlp_collector() as collector:
        yield collector


@contextmanager
def recording_operator() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An HTTP operator that takes everything and keeps the headers of each /send."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = json.dumps({"message_id": uuid.uuid4().hex}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def client_traceparent() -> tuple[str, str, str]:
    """(traceparent, trace id, span id) of a span of the calling client."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def only(spans: list[CollectedSpan], name: str) -> CollectedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, spans)
    return found[0]


def send_traced(gateway: Any, user_id: int, recipients: list[str], traceparent: str) -> str:
    with gateway.client() as client:
        response = client.post("/sms/send", headers={"traceparent": traceparent}, json={
            "customer_id": user_id, "text": "Your code is 4711", "recipients": recipients,
            "type": "express",
        })
    assert response.status_code == 200, response.text
    return str(response.json()["sms_identifier"])


def check_one_trace(
    collector: Collector, sms_identifier: str, trace_id: str, client_span: str, recipients: int
) -> dict[str, Any]:
    """The spans of one SMS, once all have arrived: one trace, parent to child."""
    def complete() -> list[CollectedSpan] | None:
        spans = collector.of_trace(trace_id)
        names = [s.name for s in spans]
        ready = ("POST /sms/send" in names and "sms.publish" in names
                 and "sms.deliver" in names and names.count("sms.operator.send") >= recipients)
        return spans if ready else None

    spans = wait_until(complete, timeout=30, every=0.1)
    # Every span naming this SMS, from any process, is in the client's trace.
    assert {s.trace_id for s in collector.about(sms_identifier)} == {trace_id}

    api = only(spans, "POST /sms/send")
    publish = only(spans, "sms.publish")
    deliver = only(spans, "sms.deliver")
    operators = [s for s in spans if s.name == "sms.operator.send"]
    assert len(operators) == recipients

    assert (api.kind, api.parent_span_id) == (SERVER, client_span)
    assert (publish.kind, publish.parent_span_id) == (PRODUCER, api.span_id)
    assert (deliver.kind, deliver.parent_span_id) == (CONSUMER, publish.span_id)
    for span in operators:
        assert (span.kind, span.parent_span_id) == (CLIENT, deliver.span_id)
        assert span.attributes["smsgw.outcome"] == "sent"
        assert span.attributes["smsgw.sms_identifier"] == sms_identifier
    assert all(s.status_code != ERROR for s in spans)

    for span in (api, publish, deliver):
        assert span.attributes["smsgw.sms_identifier"] == sms_identifier
        assert span.attributes["smsgw.type"] == "express"
    assert api.attributes["http.response.status_code"] == 200
    assert publish.attributes["smsgw.outcome"] == "published"
    assert deliver.attributes["smsgw.outcome"] == "delivered"
    assert deliver.attributes["smsgw.done"] == recipients
    return {"api": api, "publish": publish, "deliver": deliver, "operators": operators}


@pytest.mark.parametrize("mode", ["embedded"])
def test_one_trace_per_message_embedded(
    make_gateway: GatewayFactory, collector: Collector, user_id: int
) -> None:
    gateway = make_gateway(**tracing_env(collector))
    gateway.top_up(user_id, 100)
    traceparent, trace_id, client_span = client_traceparent()
    sms_identifier = send_traced(gateway, user_id, ["+989121234567", "09128582812"], traceparent)

    spans = check_one_trace(collector, sms_identifier, trace_id, client_span, recipients=2)
    assert {s.service for s in collector.of_trace(trace_id)} == {"smsgw"}
    assert spans["publish"].attributes["messaging.system"] == "inprocess"
    assert {s.attributes["smsgw.operator"] for s in spans["operators"]} == {"A"}
    assert spans["api"].attributes["smsgw.user_id"] == user_id


@pytest.mark.parametrize("mode", ["split"])
def test_one_trace_per_message_over_rabbitmq(
    make_gateway: GatewayFactory, collector: Collector, user_id: int
) -> None:
    with recording_operator() as (operator_url, seen):
        gateway = make_gateway(operators=f"H={operator_url}", **tracing_env(collector))
        gateway.top_up(user_id, 100)
        traceparent, trace_id, client_span = client_traceparent()
        sms_identifier = send_traced(gateway, user_id, ["+989121234567"], traceparent)

        spans = check_one_trace(collector, sms_identifier, trace_id, client_span, recipients=1)

    assert {s.service for s in collector.of_trace(trace_id)} == {
        "smsgw-api", "smsgw-relay", "smsgw-worker"
    }
    assert spans["publish"].attributes["messaging.system"] == "rabbitmq"
    (operator,) = spans["operators"]
    assert operator.attributes["smsgw.operator"] == "H"
    assert operator.attributes["http.response.status_code"] == 200
    # The operator was told the trace: its request names the client span as parent.
    sends = [h for h in seen if "traceparent" in h]
    assert len(sends) == len(seen) == 1
    assert sends[0]["traceparent"].split("-")[1:3] == [trace_id, operator.span_id]


@pytest.mark.parametrize("mode", ["embedded"])
def test_tracing_is_off_unless_an_exporter_is_named(
    make_gateway: GatewayFactory, collector: Collector, user_id: int
) -> None:
    gateway = make_gateway(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url)  # no OTEL_TRACES_EXPORTER
    gateway.top_up(user_id, 100)
    traceparent = client_traceparent()[0]
    sms_identifier = send_traced(gateway, user_id, ["+989121234567"], traceparent)
    gateway.wait_terminal(sms_identifier, user_id)
    gateway.stop()  # an exporter would flush at exit
    assert collector.spans == []
    # Nor does the accepted delivery carry a trace context.
    (payload,) = gateway.query(
        "SELECT payload FROM outbox_events WHERE aggregate_id = ?", sms_identifier
    )
    assert "trace" not in json.loads(payload[0])
