"""The gateway's Prometheus metrics: the catalogue of docs/observability.md.

`Metrics` owns every metric of the catalogue but the HTTP ones (the API's
Litestar middleware makes those) on one registry; the process-wide default
registry is the one `/metrics` and the metrics port serve. The rest of this
module feeds it:

- `PrometheusTelemetry`, the core's Telemetry port: money, finished
  recipients and outbox publishing, reported after they are committed;
- `MeasuredBreaker`, a decorator of the core's CircuitBreaker port: every try
  sent to an operator, with its latency and outcome;
- hooks for the adapters: `Metrics.queues` observes a bus (RabbitMQ or
  in-process), `Metrics.db_statement` the SQL engine's statements,
  `Metrics.breaker_state_changed` a ResilientBreaker's circuits and
  `Metrics.outbox_backlog` the periodic backlog reading;
- `MetricsHttpServer`, the registry over HTTP for processes without the API.

Every label takes values from a small fixed set (or from configuration:
operator and queue names), so no series grows with traffic. Known label
values are created at zero up front, so a counter is there before its first
event; gauges appear only in the processes that set them (the backlog in
relay/serve, a circuit's state where operators are called).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from smsgw_core.ledger import TransactionType
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.operators import CircuitOpen, OperatorError
from smsgw_core.ports import Backlog, CircuitBreaker

# An SQL statement: sub-millisecond on SQLite, a few ms on a loaded MySQL.
DB_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5, 5.0)
# An operator call: tens of ms over HTTP, up to the operator timeout (5 s by default).
OPERATOR_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                           30.0)
# Accept to DONE/FAILED: 10 ms on an idle embedded gateway, minutes behind a backlog.
ACCEPT_TO_TERMINAL_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                                     30.0, 60.0, 120.0, 300.0, 600.0)

OUTCOMES: Final = ("ok", "transient", "permanent", "open")
OPERATIONS: Final = ("select", "insert", "update", "delete", "other")
BREAKER_STATES: Final = {"closed": 0, "half-opened": 1, "half-open": 1, "open": 2, "opened": 2}
FINAL_STATUSES: Final = (SmsStatus.DONE, SmsStatus.FAILED)


def priority_label(priority: int) -> str:
    """The outbox priority as its message type (express/normal)."""
    for kind in MessageType:
        if kind.priority == priority:
            return kind.value
    return str(priority)


class QueueCounters:
    """Observes a bus: the RabbitMQ adapter's QueueObserver and the in-process bus's."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, ["queue"], registry=registry)

        self._published = counter("smsgw_queue_published_total",
                                  "Messages published to a queue and confirmed by the broker.")
        self._consumed = counter("smsgw_queue_consumed_total",
                                 "Messages of a queue handled and acknowledged.")
        self._redelivered = counter("smsgw_queue_redelivered_total",
                                    "Messages of a queue received again (redelivered flag).")
        self._dead_lettered = counter("smsgw_queue_dead_lettered_total",
                                      "Messages of a queue moved to the dead-letter queue.")

    def declare(self, queues: Iterable[str]) -> QueueCounters:
        """Create the series of `queues` at zero; returns self, the observer to hand over."""
        for queue in queues:
            for counter in (self._published, self._consumed, self._redelivered,
                            self._dead_lettered):
                counter.labels(queue)
        return self

    def published(self, queue: str) -> None:
        self._published.labels(queue).inc()

    def consumed(self, queue: str) -> None:
        self._consumed.labels(queue).inc()

    def redelivered(self, queue: str) -> None:
        self._redelivered.labels(queue).inc()

    def dead_lettered(self, queue: str) -> None:
        self._dead_lettered.labels(queue).inc()


class Metrics:
    """Every catalogued metric (but the HTTP ones) on `registry`.

    A registry refuses a second metric of the same name: make one `Metrics`
    per registry. `Metrics.default()` is the process's, on the default registry.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.registry = registry
        types = [kind.value for kind in MessageType]

        self.db_statement_seconds = Histogram(
            "smsgw_db_statement_duration_seconds", "One SQL statement's round trip.",
            ["operation"], buckets=DB_BUCKETS, registry=registry,
        )
        self.outbox_backlog_events = Gauge(
            "smsgw_outbox_backlog_events", "Due, unpublished outbox events.",
            ["priority"], registry=registry,
        )
        self.outbox_oldest_due_age_seconds = Gauge(
            "smsgw_outbox_oldest_due_age_seconds",
            "Age of the oldest due outbox event (0 when none).", ["priority"], registry=registry,
        )
        self.outbox_failing_events = Gauge(
            "smsgw_outbox_failing_events",
            "Outbox events waiting to be published again after failing at least twice in a "
            "row (the broker is unreachable or refuses them): alert when it stays above 0.",
            ["priority"], registry=registry,
        )
        self.outbox_published = Counter(
            "smsgw_outbox_published_total", "Outbox events published to the bus.",
            ["priority"], registry=registry,
        )
        self.outbox_publish_failures = Counter(
            "smsgw_outbox_publish_failures_total",
            "Outbox events whose publish failed (retried later, with a capped backoff).",
            ["priority"], registry=registry,
        )
        self.outbox_parked = Counter(
            "smsgw_outbox_parked_total", "Outbox events given up on (poison or out of attempts).",
            ["priority"], registry=registry,
        )
        self.queues = QueueCounters(registry)
        self.operator_sends = Counter(
            "smsgw_operator_sends_total", "Sends to an operator (every try), by outcome.",
            ["operator", "outcome"], registry=registry,
        )
        self.operator_send_seconds = Histogram(
            "smsgw_operator_send_duration_seconds", "An operator call's latency, by outcome.",
            ["operator", "outcome"], buckets=OPERATOR_BUCKETS, registry=registry,
        )
        self.operator_breaker_state = Gauge(
            "smsgw_operator_breaker_state",
            "An operator's circuit: 0 closed, 1 half-open, 2 open.", ["operator"],
            registry=registry,
        )
        self.ledger_transactions = Counter(
            "smsgw_ledger_transactions_total", "Ledger transactions committed.", ["type"],
            registry=registry,
        )
        self.ledger_amount_units = Counter(
            "smsgw_ledger_amount_units_total", "Money moved by committed transactions, in units.",
            ["type"], registry=registry,
        )
        self.recipients_finished = Counter(
            "smsgw_recipients_finished_total", "Recipients reaching DONE or FAILED.",
            ["type", "status"], registry=registry,
        )
        self.accept_to_terminal_seconds = Histogram(
            "smsgw_accept_to_terminal_seconds",
            "From an SMS's accept to a recipient's DONE/FAILED.", ["type"],
            buckets=ACCEPT_TO_TERMINAL_BUCKETS, registry=registry,
        )

        for operation in OPERATIONS:
            self.db_statement_seconds.labels(operation)
        for kind in types:
            # Not the backlog gauges: only a process that reads the backlog has them.
            for metric in (self.outbox_published, self.outbox_publish_failures,
                           self.outbox_parked):
                metric.labels(kind)
            self.accept_to_terminal_seconds.labels(kind)
            for status in FINAL_STATUSES:
                self.recipients_finished.labels(kind, status.value.lower())
        for tx_type in TransactionType:
            self.ledger_transactions.labels(tx_type.value)
            self.ledger_amount_units.labels(tx_type.value)

    @classmethod
    def default(cls) -> Metrics:
        """The process's metrics, on prometheus_client's default registry (made once)."""
        global _default
        with _default_lock:
            if _default is None:
                _default = cls(REGISTRY)
            return _default

    def declare_operators(self, operators: Iterable[str]) -> None:
        """Create the operators' series at zero, their circuits closed."""
        for operator in operators:
            self.operator_breaker_state.labels(operator).set(0)
            for outcome in OUTCOMES:
                self.operator_sends.labels(operator, outcome)
                self.operator_send_seconds.labels(operator, outcome)

    def db_statement(self, operation: str, seconds: float) -> None:
        label = operation if operation in OPERATIONS else "other"
        self.db_statement_seconds.labels(label).observe(max(0.0, seconds))

    def operator_send(self, operator: str, outcome: str, seconds: float) -> None:
        self.operator_sends.labels(operator, outcome).inc()
        self.operator_send_seconds.labels(operator, outcome).observe(max(0.0, seconds))

    def breaker_state_changed(self, operator: str, state: str) -> None:
        """ResilientBreaker's on_state_change: closed, half-opened or open."""
        if state in BREAKER_STATES:
            self.operator_breaker_state.labels(operator).set(BREAKER_STATES[state])

    def outbox_backlog(self, backlog: Sequence[Backlog], now: datetime) -> None:
        """Set the backlog gauges from a reading; a priority with nothing due reads 0."""
        events = {kind.value: 0 for kind in MessageType}
        ages = {kind.value: 0.0 for kind in MessageType}
        failing = {kind.value: 0 for kind in MessageType}
        for lane in backlog:
            label = priority_label(lane.priority)
            events[label] = lane.events
            ages[label] = _age(lane.oldest, now) if lane.events else 0.0
            failing[label] = lane.failing
        for label, count in events.items():
            self.outbox_backlog_events.labels(label).set(count)
            self.outbox_oldest_due_age_seconds.labels(label).set(ages[label])
            self.outbox_failing_events.labels(label).set(failing[label])


_default: Metrics | None = None
_default_lock = threading.Lock()


def _age(oldest: datetime | None, now: datetime) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # stored as UTC without a zone
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (now - oldest).total_seconds())


class PrometheusTelemetry:
    """The core's Telemetry port on `Metrics`: what the use cases committed."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def ledger(self, type: TransactionType, amount: int, count: int = 1) -> None:
        self._m.ledger_transactions.labels(type.value).inc(max(0, count))
        self._m.ledger_amount_units.labels(type.value).inc(abs(amount))

    def finished(self, type: MessageType, status: SmsStatus, seconds: float | None) -> None:
        self._m.recipients_finished.labels(type.value, status.value.lower()).inc()
        if seconds is not None:
            self._m.accept_to_terminal_seconds.labels(type.value).observe(max(0.0, seconds))

    def relayed(self, type: MessageType, published: int, failed: int, parked: int) -> None:
        label = type.value
        self._m.outbox_published.labels(label).inc(max(0, published))
        self._m.outbox_publish_failures.labels(label).inc(max(0, failed))
        self._m.outbox_parked.labels(label).inc(max(0, parked))


class MeasuredBreaker:
    """The CircuitBreaker port around any breaker, counting and timing operator sends.

    Every try that reaches the operator is counted with its own latency and
    outcome (ok, transient, permanent; an exception that is not an
    OperatorError counts as transient, as failover treats it); a call the
    circuit refuses without sending is counted as `open`. So a retried send
    shows as two tries, and `open` shows how much traffic a circuit turned away.
    """

    def __init__(
        self, inner: CircuitBreaker, metrics: Metrics, operators: Iterable[str] = ()
    ) -> None:
        self._inner = inner
        self._metrics = metrics
        metrics.declare_operators(operators)

    @property
    def inner(self) -> CircuitBreaker:
        return self._inner

    async def call(self, operator: str, send: Callable[[], Awaitable[str]]) -> str:
        metrics = self._metrics

        async def measured() -> str:
            started = time.perf_counter()
            try:
                result = await send()
            except OperatorError as exc:
                outcome = "transient" if exc.transient else "permanent"
                metrics.operator_send(operator, outcome, time.perf_counter() - started)
                raise
            except Exception:
                metrics.operator_send(operator, "transient", time.perf_counter() - started)
                raise
            metrics.operator_send(operator, "ok", time.perf_counter() - started)
            return result

        started = time.perf_counter()
        try:
            return await self._inner.call(operator, measured)
        except CircuitOpen:
            metrics.operator_send(operator, "open", time.perf_counter() - started)
            raise


class MetricsHttpServer:
    """`registry` over HTTP (any path, `/metrics` included) on a daemon thread."""

    def __init__(self, port: int, host: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY):
        self.host = host
        self.port = port
        self._registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; raises OSError when the port cannot be bound."""
        self._server, self._thread = start_http_server(
            self.port, addr=self.host, registry=self._registry
        )
        self.port = int(self._server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
