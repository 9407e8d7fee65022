"""Metrics fed from the core's ports: the Telemetry port, and a CircuitBreaker decorator."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

from smsgw_adapters.observability.metrics.catalogue import Metrics
from smsgw_core.ledger import TransactionType
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.operators import CircuitOpen, OperatorError
from smsgw_core.ports import CircuitBreaker
from smsgw_core.receipts import Reported
from smsgw_core.webhooks import EventState


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

    def receipt_applied(self, operator: str, reported: Reported, seconds: float) -> None:
        self._m.receipts.labels(operator, reported.value).inc()
        self._m.done_to_receipt_seconds.labels(operator).observe(max(0.0, seconds))

    def receipt_unmatched(self, operator: str, verdict: str) -> None:
        self._m.receipts.labels(operator, verdict).inc()

    def receipt_orphans(self, operator: str, count: int) -> None:
        self._m.receipt_orphans.labels(operator).inc(max(0, count))

    def webhook_attempt(self, state: EventState, status_code: int | None,
                        seconds: float) -> None:
        self._m.webhook_attempts.labels(state.value).inc()
        self._m.webhook_attempt_seconds.labels(state.value).observe(max(0.0, seconds))

    def webhook_disabled(self) -> None:
        self._m.webhook_endpoints_disabled.inc()

    def webhook_oldest(self, seconds: float) -> None:
        self._m.webhook_oldest_pending.set(max(0.0, seconds))


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
