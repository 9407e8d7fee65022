"""Observability adapters: Prometheus metrics (the catalogue in docs/observability.md)."""

from smsgw_adapters.observability.metrics import (
    MeasuredBreaker,
    Metrics,
    MetricsHttpServer,
    PrometheusTelemetry,
    QueueCounters,
    priority_label,
)

__all__ = [
    "MeasuredBreaker",
    "Metrics",
    "MetricsHttpServer",
    "PrometheusTelemetry",
    "QueueCounters",
    "priority_label",
]
