"""The Prometheus adapters: the catalogue's metrics, the telemetry port, the measured
breaker, the SQL, bus and backlog hooks, and the metrics HTTP server."""

from __future__ import annotations

import logging
import re
import socket
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from smsgw_adapters.inprocess import InProcessBus
from smsgw_adapters.observability import (
    MeasuredBreaker,
    Metrics,
    MetricsHttpServer,
    PrometheusTelemetry,
    priority_label,
)
from smsgw_adapters.resilience import ResilientBreaker
from smsgw_adapters.sql.engine import create_engine, observe_statements, statement_operation
from smsgw_app import processes
from smsgw_app.config import ConfigError, Settings
from smsgw_core.ledger import TransactionType
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.operators import CircuitOpen, ErrorClass, OperatorError, OutgoingSms
from smsgw_core.outbox import DeliveryJob
from smsgw_core.ports import Backlog
from smsgw_core.testing import CountingCircuitBreaker, FakeClock, ScriptedOperator, always

ROOT = Path(__file__).resolve().parents[2]
SMS = OutgoingSms("+989120000001", "hello", "sms-1:+989120000001")
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def catalogue() -> dict[str, str]:
    """name -> type of every metric in docs/observability.md."""
    rows = re.findall(r"^\| `(smsgw_[a-z_]+)` \| (\w+) \|",
                      (ROOT / "docs" / "observability.md").read_text(), re.MULTILINE)
    return dict(rows)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    assert found is not None, (name, labels)
    return found


async def no_sleep(_: float) -> None:
    return None


def test_every_catalogued_metric_is_defined_with_its_type_and_exists_at_zero(
    metrics: Metrics,
) -> None:
    listed = {name: kind for name, kind in catalogue().items()
              if not name.startswith("smsgw_http_")}  # the API middleware's (api/http_metrics.py)
    assert len(listed) >= 17
    metrics.outbox_backlog([], NOW)  # gauges appear once set
    metrics.declare_operators(["A"])
    families = {
        f.name: f.type
        for f in text_string_to_metric_families(
            generate_latest(metrics.registry).decode()
        )
    }
    for name, kind in listed.items():
        family = name.removesuffix("_total") if kind == "counter" else name
        assert families.get(family) == kind, (name, families.get(family))
    # known label values are there before the first event
    assert value(metrics, "smsgw_recipients_finished_total", type="normal", status="failed") == 0
    assert value(metrics, "smsgw_ledger_transactions_total", type="refund") == 0
    assert value(metrics, "smsgw_db_statement_duration_seconds_count", operation="other") == 0


def test_the_default_metrics_are_made_once_per_process_on_the_default_registry() -> None:
    # What one caller counts, every other caller and prometheus_client's default
    # registry (the one the metrics server exposes) see: a Metrics made per call,
    # or on a registry of its own, would leave the second count or the scrape behind.
    series = {"operator": "once-per-process", "outcome": "ok"}

    def scraped() -> float:
        return REGISTRY.get_sample_value("smsgw_operator_sends_total", series) or 0.0

    before = scraped()
    Metrics.default().operator_send("once-per-process", "ok", 0.1)
    Metrics.default().operator_send("once-per-process", "ok", 0.1)
    assert scraped() == before + 2
    assert Metrics.default().registry is REGISTRY


def test_telemetry_counts_money_finished_recipients_and_publishing(metrics: Metrics) -> None:
    telemetry = PrometheusTelemetry(metrics)
    telemetry.ledger(TransactionType.TOPUP, 100)
    telemetry.ledger(TransactionType.CHARGE, -6)
    telemetry.ledger(TransactionType.REFUND, 3, count=3)
    telemetry.finished(MessageType.EXPRESS, SmsStatus.DONE, 0.02)
    telemetry.finished(MessageType.EXPRESS, SmsStatus.FAILED, 400.0)
    telemetry.finished(MessageType.NORMAL, SmsStatus.DONE, None)  # accept time unknown
    telemetry.relayed(MessageType.NORMAL, published=5, failed=2, parked=1)

    assert value(metrics, "smsgw_ledger_transactions_total", type="topup") == 1
    assert value(metrics, "smsgw_ledger_amount_units_total", type="charge") == 6  # absolute
    assert value(metrics, "smsgw_ledger_transactions_total", type="refund") == 3
    assert value(metrics, "smsgw_ledger_amount_units_total", type="refund") == 3
    assert value(metrics, "smsgw_recipients_finished_total", type="express", status="done") == 1
    assert value(metrics, "smsgw_recipients_finished_total", type="express", status="failed") == 1
    assert value(metrics, "smsgw_recipients_finished_total", type="normal", status="done") == 1
    assert value(metrics, "smsgw_accept_to_terminal_seconds_count", type="express") == 2
    assert value(metrics, "smsgw_accept_to_terminal_seconds_count", type="normal") == 0
    assert value(metrics, "smsgw_accept_to_terminal_seconds_bucket", type="express",
                 le="0.025") == 1
    assert value(metrics, "smsgw_accept_to_terminal_seconds_bucket", type="express",
                 le="600.0") == 2
    assert value(metrics, "smsgw_outbox_published_total", priority="normal") == 5
    assert value(metrics, "smsgw_outbox_publish_failures_total", priority="normal") == 2
    assert value(metrics, "smsgw_outbox_parked_total", priority="normal") == 1
    assert value(metrics, "smsgw_outbox_published_total", priority="express") == 0


async def test_the_measured_breaker_counts_every_try_by_outcome(metrics: Metrics) -> None:
    states: list[tuple[str, str]] = []

    def on_change(operator: str, state: str) -> None:
        states.append((operator, state))
        metrics.breaker_state_changed(operator, state)

    resilient = ResilientBreaker(min_calls=2, failure_rate=0.5, attempts=2, reset_s=30,
                                 sleep=no_sleep, on_state_change=on_change)
    measured = MeasuredBreaker(resilient, metrics, operators=["A", "B"])
    assert value(metrics, "smsgw_operator_breaker_state", operator="B") == 0
    ok = ScriptedOperator("B", always(ErrorClass.PERMANENT))

    assert await measured.call("A", partial(ScriptedOperator("A").send, SMS))
    with pytest.raises(OperatorError):
        await measured.call("B", partial(ok.send, SMS))  # permanent: not retried
    failing = ScriptedOperator("A", always(ErrorClass.TRANSIENT))
    with pytest.raises(OperatorError):  # two tries, one failed call of two: it opens
        await measured.call("A", partial(failing.send, SMS))
    with pytest.raises(CircuitOpen):  # refused without a send
        await measured.call("A", partial(failing.send, SMS))

    def sends(operator: str, outcome: str) -> float:
        return value(metrics, "smsgw_operator_sends_total", operator=operator, outcome=outcome)

    assert (sends("A", "ok"), sends("A", "transient"), sends("A", "open")) == (1, 2, 1)
    assert sends("B", "permanent") == 1 and sends("B", "ok") == 0
    assert failing.calls == 2
    assert value(metrics, "smsgw_operator_send_duration_seconds_count", operator="A",
                 outcome="transient") == 2
    assert ("A", "open") in states
    assert value(metrics, "smsgw_operator_breaker_state", operator="A") == 2


async def test_the_measured_breaker_wraps_any_breaker(metrics: Metrics) -> None:
    clock = FakeClock()
    measured = MeasuredBreaker(CountingCircuitBreaker(clock, threshold=1), metrics)

    async def broken() -> str:
        raise RuntimeError("adapter bug")

    with pytest.raises(RuntimeError):  # not an OperatorError: counted as transient
        await measured.call("X", broken)
    with pytest.raises(OperatorError):
        await measured.call("X", partial(ScriptedOperator("X", always(
            ErrorClass.TRANSIENT)).send, SMS))
    with pytest.raises(CircuitOpen):
        await measured.call("X", partial(ScriptedOperator("X").send, SMS))
    assert value(metrics, "smsgw_operator_sends_total", operator="X", outcome="transient") == 2
    assert value(metrics, "smsgw_operator_sends_total", operator="X", outcome="open") == 1


def test_breaker_states_map_to_numbers(metrics: Metrics) -> None:
    for state, number in (("open", 2), ("half-opened", 1), ("closed", 0)):
        metrics.breaker_state_changed("A", state)
        assert value(metrics, "smsgw_operator_breaker_state", operator="A") == number


def test_backlog_gauges_follow_each_reading(metrics: Metrics) -> None:
    metrics.outbox_backlog([Backlog(10, 3, NOW - timedelta(seconds=42)),
                            Backlog(0, 7, (NOW - timedelta(seconds=5)).replace(tzinfo=None))],
                           NOW)
    assert value(metrics, "smsgw_outbox_backlog_events", priority="express") == 3
    assert value(metrics, "smsgw_outbox_oldest_due_age_seconds", priority="express") == 42
    assert value(metrics, "smsgw_outbox_backlog_events", priority="normal") == 7
    assert value(metrics, "smsgw_outbox_oldest_due_age_seconds", priority="normal") == 5
    metrics.outbox_backlog([Backlog(0, 1, NOW)], NOW)  # express drained: back to 0
    assert value(metrics, "smsgw_outbox_backlog_events", priority="express") == 0
    assert value(metrics, "smsgw_outbox_oldest_due_age_seconds", priority="express") == 0
    assert value(metrics, "smsgw_outbox_backlog_events", priority="normal") == 1
    assert priority_label(10) == "express" and priority_label(0) == "normal"
    assert priority_label(5) == "5"


@pytest.mark.parametrize(("statement", "operation"), [
    ("SELECT 1", "select"), ("  select x from t", "select"), ("(SELECT 1) UNION (SELECT 2)",
                                                              "select"),
    ("INSERT INTO t VALUES (1)", "insert"), ("\nUPDATE t SET a = 1", "update"),
    ("DELETE FROM t", "delete"), ("BEGIN IMMEDIATE", "other"), ("PRAGMA foo", "other"),
    ("", "other"), ("WITH x AS (SELECT 1) SELECT * FROM x", "other"),
])
def test_the_operation_is_the_first_keyword(statement: str, operation: str) -> None:
    assert statement_operation(statement) == operation


async def test_sql_statements_are_timed_by_operation(metrics: Metrics, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    observe_statements(engine, metrics.db_statement)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (a INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            await conn.execute(text("UPDATE t SET a = 2"))
            await conn.execute(text("SELECT a FROM t"))
            await conn.execute(text("DELETE FROM t"))
        with pytest.raises(Exception, match="no such table"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT * FROM missing"))
    finally:
        await engine.dispose()

    def count(operation: str) -> float:
        return value(metrics, "smsgw_db_statement_duration_seconds_count", operation=operation)

    assert (count("insert"), count("update"), count("delete")) == (1, 1, 1)
    assert count("select") == 2  # the failed one too
    assert count("other") >= 2  # BEGIN IMMEDIATE, CREATE TABLE


async def test_the_in_process_bus_reports_published_and_handled_deliveries(
    metrics: Metrics,
) -> None:
    bus = InProcessBus(observer=metrics.queues.declare(InProcessBus().queues))
    assert value(metrics, "smsgw_queue_redelivered_total", queue="inprocess-normal") == 0
    express = DeliveryJob("s1", 1, MessageType.EXPRESS, "hi", ("0912000001",), 1, NOW)
    normal = DeliveryJob("s2", 1, MessageType.NORMAL, "hi", ("0912000001",), 1, NOW)
    await bus.publish([normal, express])
    taken = await bus.take()
    bus.done(taken)
    await bus.take()
    bus.done()  # not handled: not consumed
    assert value(metrics, "smsgw_queue_published_total", queue="inprocess-express") == 1
    assert value(metrics, "smsgw_queue_published_total", queue="inprocess-normal") == 1
    assert value(metrics, "smsgw_queue_consumed_total", queue="inprocess-express") == 1
    assert value(metrics, "smsgw_queue_consumed_total", queue="inprocess-normal") == 0


def test_queue_counters_observe_rabbitmq_queues(metrics: Metrics) -> None:
    observer = metrics.queues.declare(["Q"])
    observer.published("Q")
    observer.consumed("Q")
    observer.redelivered("Q")
    observer.dead_lettered("Q")
    for name in ("published", "consumed", "redelivered", "dead_lettered"):
        assert value(metrics, f"smsgw_queue_{name}_total", queue="Q") == 1


def test_the_metrics_port_is_a_setting() -> None:
    assert Settings.from_env({}).metrics_port == 9464
    assert Settings.from_env({"SMSGW_METRICS_PORT": "0"}).metrics_port == 0
    for bad in ("-1", "65536", "http"):
        with pytest.raises(ConfigError, match="SMSGW_METRICS_PORT"):
            Settings.from_env({"SMSGW_METRICS_PORT": bad})


def test_the_metrics_server_serves_the_registry_and_closes(metrics: Metrics) -> None:
    metrics.queues.declare(["served"]).published("served")
    server = MetricsHttpServer(0, host="127.0.0.1", registry=metrics.registry)
    server.start()
    try:
        body = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    finally:
        server.close()
    assert 'smsgw_queue_published_total{queue="served"} 1.0' in body
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=2)


def test_a_taken_metrics_port_is_logged_and_the_process_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, "smsgw"):
            assert processes.metrics_server(Settings(metrics_port=port)) == []
    assert f"SMSGW_METRICS_PORT='{port}'" in caplog.text
    assert processes.metrics_server(Settings(metrics_port=0)) == []
