"""Every catalogued metric but the HTTP ones, on one registry (docs/observability.md)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol, runtime_checkable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from smsgw_adapters.observability.metrics.queues import QueueCounters, priority_label
from smsgw_core.ledger import TransactionType
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.ports import Backlog

# An SQL statement: sub-millisecond on SQLite, a few ms on a loaded MySQL.
DB_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5, 5.0)
# An operator call: tens of ms over HTTP, up to the operator timeout (5 s by default).
OPERATOR_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                           30.0)
# Accept to DONE/FAILED: 10 ms on an idle embedded gateway, minutes behind a backlog.
ACCEPT_TO_TERMINAL_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                                     30.0, 60.0, 120.0, 300.0, 600.0)

# From the operator's answer (DONE) to its receipt: a second for most, hours for a
# phone switched off.
DONE_TO_RECEIPT_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                                  900.0, 3600.0, 14400.0, 86400.0)

OUTCOMES: Final = ("ok", "transient", "permanent", "open")
# What became of a receipt: the status it applied, or why it applied none.
RECEIPT_OUTCOMES: Final = ("delivered", "undelivered", "expired", "kept", "duplicate")
OPERATIONS: Final = ("select", "insert", "update", "delete", "other")
BREAKER_STATES: Final = {"closed": 0, "half-opened": 1, "half-open": 1, "open": 2, "opened": 2}
FINAL_STATUSES: Final = (SmsStatus.DONE, SmsStatus.FAILED)  # of a delivery (not a receipt)
# What an SMPP operator did with a deliver_sm (label value -> its SmppCounts field).
DELIVER_SM_OUTCOMES: Final = {
    "taken": "receipts_taken",  # a final receipt, recorded and then acknowledged
    "refused": "receipts_refused",  # a final receipt not recorded: ESME_RX_T_APPN, sent again
    "not_final": "receipts_not_final",  # ENROUTE, ACCEPTD...: acknowledged, nothing applied
    "unreadable": "receipts_unreadable",  # names no message: acknowledged, nothing applied
    "unrecorded": "receipts_unrecorded",  # a process without a receipt sink: acknowledged
    "mo": "mo_messages",  # a message from a phone: acknowledged, not stored
}


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
        self.receipts = Counter(
            "smsgw_receipts_total",
            "Operators' delivery receipts: the final status applied (delivered, undelivered, "
            "expired), or kept (no recipient has the id yet) or duplicate.",
            ["operator", "status"], registry=registry,
        )
        self.receipt_orphans = Counter(
            "smsgw_receipt_orphans_total",
            "Kept receipts dropped after the orphan time: no recipient ever had their id.",
            ["operator"], registry=registry,
        )
        self.done_to_receipt_seconds = Histogram(
            "smsgw_done_to_receipt_seconds",
            "From the operator taking a recipient (DONE) to the receipt that settled it.",
            ["operator"], buckets=DONE_TO_RECEIPT_BUCKETS, registry=registry,
        )
        self.webhook_attempts = Counter(
            "smsgw_webhook_attempts_total",
            "Webhook delivery attempts, by what their event is after it: delivered, pending "
            "(to be retried) or dead (retries exhausted, or the endpoint disabled).",
            ["outcome"], registry=registry,
        )
        self.webhook_attempt_seconds = Histogram(
            "smsgw_webhook_attempt_seconds", "A webhook attempt's duration, by outcome.",
            ["outcome"], buckets=OPERATOR_BUCKETS, registry=registry,
        )
        self.webhook_endpoints_disabled = Counter(
            "smsgw_webhook_endpoints_disabled_total",
            "Webhook endpoints disabled because they answered 410 Gone.", registry=registry,
        )
        self.webhook_oldest_pending = Gauge(
            "smsgw_webhook_oldest_pending_seconds",
            "Age of the oldest webhook event not yet delivered (0: none): the figure to "
            "alert on.", registry=registry,
        )
        for outcome in ("delivered", "pending", "dead"):
            self.webhook_attempts.labels(outcome)
            self.webhook_attempt_seconds.labels(outcome)
        # Read from the SMPP operators at each scrape (watch_operator): their series are
        # there only in processes with an SMPP operator.
        self.smpp = SmppCollector()
        registry.register(self.smpp)

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
            for status in RECEIPT_OUTCOMES:
                self.receipts.labels(operator, status)
            self.receipt_orphans.labels(operator)
            self.done_to_receipt_seconds.labels(operator)

    def watch_operator(self, operator: object) -> None:
        """Report `operator`'s SMPP binds and deliver_sm (read at each scrape) if it is an
        SMPP operator; any other operator has nothing to add."""
        if isinstance(operator, SmppSource):
            self.smpp.watch(operator)

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
        for reading in backlog:
            label = priority_label(reading.priority)
            events[label] = reading.events
            ages[label] = _age(reading.oldest, now) if reading.events else 0.0
            failing[label] = reading.failing
        for label, count in events.items():
            self.outbox_backlog_events.labels(label).set(count)
            self.outbox_oldest_due_age_seconds.labels(label).set(ages[label])
            self.outbox_failing_events.labels(label).set(failing[label])


class SmppBind(Protocol):
    """What the metrics read of one bind (smpp.session.Session)."""

    @property
    def bound(self) -> bool: ...
    @property
    def outstanding(self) -> int: ...
    @property
    def drops(self) -> int: ...
    @property
    def throttled(self) -> int: ...


@runtime_checkable
class SmppSource(Protocol):
    """What the metrics read of an SMPP operator (smpp.operator.SmppOperator): its binds
    (`sessions`) and what its deliver_sm were (`counts`, DELIVER_SM_OUTCOMES' fields)."""

    @property
    def name(self) -> str: ...
    @property
    def sessions(self) -> Sequence[SmppBind]: ...
    @property
    def counts(self) -> object: ...


class SmppCollector(Collector):
    """The SMPP operators' figures, read from the operators themselves at each scrape:
    their sessions and counts are plain numbers the event loop updates, so nothing is
    added to the send or receipt path. One series set per operator name (a rebuilt
    operator of the same name replaces the one before it)."""

    def __init__(self) -> None:
        self._operators: dict[str, SmppSource] = {}

    def watch(self, operator: SmppSource) -> None:
        self._operators[operator.name] = operator

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        binds, outstanding, drops, throttled, delivers = families = self._families()
        for name, operator in list(self._operators.items()):
            sessions = list(operator.sessions)
            binds.add_metric([name], sum(1 for s in sessions if s.bound))
            outstanding.add_metric([name], sum(s.outstanding for s in sessions))
            drops.add_metric([name], sum(s.drops for s in sessions))
            throttled.add_metric([name], sum(s.throttled for s in sessions))
            for outcome, field in DELIVER_SM_OUTCOMES.items():
                delivers.add_metric([name, outcome], getattr(operator.counts, field, 0))
        return families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily(
                "smsgw_smpp_binds", "An SMPP operator's binds bound now.",
                labels=["operator"]),
            GaugeMetricFamily(
                "smsgw_smpp_submits_in_progress",
                "An SMPP operator's submit_sm in progress: waiting for a bind's window, sent "
                "and not answered, or paused by the SMSC's throttling.", labels=["operator"]),
            CounterMetricFamily(
                "smsgw_smpp_link_drops", "An SMPP operator's links lost once bound (each "
                "bound again after a pause).", labels=["operator"]),
            CounterMetricFamily(
                "smsgw_smpp_throttled", "submit_sm the SMSC answered ESME_RTHROTTLED or "
                "ESME_RMSGQFUL (the bind paused, the part sent again).", labels=["operator"]),
            CounterMetricFamily(
                "smsgw_smpp_deliver_sm", "deliver_sm an SMPP operator received, by what was "
                "done with them (taken, refused, not_final, unreadable, unrecorded, mo).",
                labels=["operator", "outcome"]),
        )


_default: Metrics | None = None
_default_lock = threading.Lock()


def _age(oldest: datetime | None, now: datetime) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # stored as UTC without a zone
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (now - oldest).total_seconds())
