"""The webhooks scenario's reading of the gateway (benchmarks/bench/webhooks.py) and its
receiver (benchmarks/bench/webhook_sink.py), without services; its figures, targets and
page are tested with the others' in test_bench_report.py."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

from benchmarks.bench import webhook_sink, webhooks

from smsgw_adapters.webhooks.signing import headers, new_secret, secret_key


def at(seconds: float) -> datetime:
    return datetime(2026, 12, 7, 12, 0, 0) + timedelta(seconds=seconds)


def test_every_process_gets_the_same_webhook_settings() -> None:
    key = webhooks.new_key()
    assert webhooks.settings(key) == {
        "SMSGW_WEBHOOK_KEY": key, "SMSGW_WEBHOOK_ALLOW_HTTP": "1",
        "SMSGW_WEBHOOK_ALLOW_PRIVATE": "1"}
    from smsgw_app.config import Settings

    read = Settings.from_env(webhooks.settings(key))  # a key the gateway takes
    assert (read.webhook_allow_http, read.webhook_allow_private) == (True, True)
    assert len(webhooks.EVENT_TYPES) == 5


def test_customers_are_spread_over_the_receivers_ports() -> None:
    ports = [4001, 4002, 4003]
    assert [webhooks.endpoint_url(ports, c) for c in (1, 2, 3)] == [
        "http://127.0.0.1:4002/c/1", "http://127.0.0.1:4003/c/2", "http://127.0.0.1:4001/c/3"]


def test_attempts_read_from_the_webhooks_process_metrics() -> None:
    text = "\n".join([
        "# HELP smsgw_webhook_attempts_total Webhook delivery attempts",
        "# TYPE smsgw_webhook_attempts_total counter",
        'smsgw_webhook_attempts_total{outcome="delivered"} 990.0',
        'smsgw_webhook_attempts_total{outcome="pending"} 7.0',
        'smsgw_webhook_attempts_created{outcome="pending"} 1.7e+09',
        'smsgw_webhook_attempt_seconds_sum{outcome="delivered"} 2.5',
        'smsgw_webhook_attempt_seconds_count{outcome="delivered"} 990.0',
        'smsgw_webhook_attempt_seconds_sum{outcome="pending"} 0.5',
        'smsgw_webhook_attempt_seconds_count{outcome="pending"} 7.0',
        "smsgw_webhook_oldest_pending_seconds 12.5",
        'smsgw_db_statement_duration_seconds_bucket{le="0.001",operation="select"} 10.0',
        'smsgw_db_statement_duration_seconds_count{operation="select"} 3000.0',
        'smsgw_db_statement_duration_seconds_sum{operation="select"} 1.5',
        'smsgw_db_statement_duration_seconds_count{operation="update"} 1000.0',
        'smsgw_db_statement_duration_seconds_sum{operation="update"} 0.5',
    ])
    assert webhooks.attempt_metrics(text) == {
        "delivered": 990.0, "pending": 7.0, "dead": 0.0, "attempt_seconds_sum": 3.0,
        "attempt_seconds_count": 997.0, "oldest_pending_s": 12.5,
        "db_select_count": 3000.0, "db_select_sum": 1.5, "db_update_count": 1000.0,
        "db_update_sum": 0.5, "db_count": 4000.0, "db_sum": 2.0}


def test_events_and_attempts_summed_from_the_tables() -> None:
    summary = webhooks.summarize_events(
        by=[("delivered", "message.sent", 95), ("delivered", "message.failed", 2),
            ("pending", "message.sent", 2), ("dead", "message.sent", 1)],
        first=at(1.0), last=at(11.0), waits_us=[1_000 * (n + 1) for n in range(97)],
        codes=[(200, 97), (500, 3), (None, 2)], errors=[("timeout after 10.0 s", 2)],
        first_sms=at(0.0), last_sms=at(10.5))
    assert summary == {
        "events": {"written": 100, "delivered": 97, "pending": 2, "dead": 1,
                   "by_type": {"message.sent": 98, "message.failed": 2},
                   "delivered_per_s": 9.7, "notified_per_s": round(97 / 11, 3),
                   "latency_ms": {"mean": 49.0, "p50": 49.0, "p99": 97.0, "max": 97.0},
                   "last_after_delivery_s": 0.5, "span_s": 10.0},
        "attempts": {"total": 102, "failed": 5,
                     "by_code": {"200": 97, "500": 3, "none": 2},
                     "errors": {"timeout after 10.0 s": 2}},
    }
    nothing = webhooks.summarize_events([], None, None, [], [], [], None, None)
    assert nothing["events"]["written"] == 0
    assert nothing["events"]["delivered_per_s"] is None
    assert nothing["events"]["latency_ms"] is None
    assert nothing["attempts"] == {"total": 0, "failed": 0, "by_code": {}, "errors": {}}


def kept(customer: int, secret: str, body: bytes, *, stamp: int | None = None,
         arrived: float | None = None) -> dict[str, Any]:
    """A request as the receiver keeps it, signed by the gateway's own signing code."""
    stamp = int(time.time()) if stamp is None else stamp
    signed = headers([secret_key(secret)], "msg_abc", stamp, body)
    return {"path": f"/c/{customer}", "headers": dict(signed), "body": body.decode(),
            "at": stamp + 0.2 if arrived is None else arrived}


def test_the_sample_is_verified_with_the_reference_implementation() -> None:
    secrets = {1: new_secret(), 2: new_secret()}
    body = json.dumps({"type": "message.sent", "timestamp": "t",
                       "data": {"message_id": "m1", "recipient": "0912"}}).encode()
    good = [kept(1, secrets[1], body), kept(2, secrets[2], body)]
    assert webhooks.verify_sample(good, secrets) == {"checked": 2, "passed": 2, "failures": []}
    bad = [
        kept(1, secrets[2], body),  # another customer's secret
        {**kept(2, secrets[2], body), "body": body.decode().replace("m1", "m2")},  # altered
        kept(3, secrets[1], body),  # a customer with no endpoint
        kept(1, secrets[1], body, stamp=1_000, arrived=2_000.0),  # too late
        kept(2, secrets[2], b'{"type": "webhook.test", "data": {}}'),
        kept(1, secrets[1], body),
    ]
    result = webhooks.verify_sample(bad, secrets)
    assert (result["checked"], result["passed"]) == (6, 1)
    assert result["failures"] == [
        "/c/1: no signature matches its secret", "/c/2: no signature matches its secret",
        "/c/3: no secret or timestamp for it",
        "/c/1: timestamp 1000 outside the tolerance of its arrival",
        '/c/2: not a message event: {"type": "webhook.test", "data": {}}']


class Transport:
    """What the receiver's protocol writes, and whether it closed."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


def post(n: int, body: bytes = b'{"type":"message.sent"}', signed: bool = True) -> bytes:
    head = f"POST /c/{n} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    if signed:
        head += (f"webhook-id: msg_{n}\r\nwebhook-timestamp: 1700000000\r\n"
                 "Webhook-Signature: v1,abc\r\n")
    return (head + "\r\n").encode() + body


def test_the_receiver_counts_keep_alive_requests_in_any_chunks() -> None:
    counts = webhook_sink.Counts(keep_every=2, keep=10)
    sink, transport = webhook_sink.Sink(counts), Transport()
    sink.connection_made(transport)  # type: ignore[arg-type]
    stream = post(1) + post(2) + post(1) + post(3, signed=False)
    for start in range(0, len(stream), 7):  # pipelined, and cut anywhere
        sink.data_received(stream[start:start + 7])
    assert transport.written == webhook_sink.OK * 4
    assert not transport.closed
    stats = counts.stats()
    assert {k: stats[k] for k in ("requests", "unique", "duplicates", "missing_headers",
                                  "kept")} == {"requests": 4, "unique": 2, "duplicates": 1,
                                               "missing_headers": 1, "kept": 2}
    first = counts.kept[0]
    assert (first["path"], first["body"]) == ("/c/1", '{"type":"message.sent"}')
    assert first["headers"] == {"webhook-id": "msg_1", "webhook-timestamp": "1700000000",
                                "webhook-signature": "v1,abc"}
    assert counts.kept[1]["path"] == "/c/1"  # the third request: one in two kept

    sink.data_received(b"GET /_stats HTTP/1.1\r\n\r\n")
    answer = transport.written[len(webhook_sink.OK) * 4:]
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["requests"] == 4


def test_the_receiver_refuses_what_it_cannot_count() -> None:
    for request in (b"POST /c/1 HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                    b"POST /c/1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                    b"GARBAGE\r\n\r\n"):
        counts = webhook_sink.Counts(keep_every=1, keep=1)
        sink, transport = webhook_sink.Sink(counts), Transport()
        sink.connection_made(transport)  # type: ignore[arg-type]
        sink.data_received(request)
        assert transport.written.startswith(b"HTTP/1.1 400 Bad Request\r\n"), request
        assert transport.closed
        assert counts.requests == 0
