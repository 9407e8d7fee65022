"""The gateway's Prometheus metrics: the catalogue of docs/observability.md.

`Metrics` owns every metric of the catalogue but the HTTP ones (the API's
middleware, smsgw_app/api/http_metrics.py, makes those) on one registry; the process-wide default
registry is the one `/metrics` and the metrics port serve. The rest of this
package feeds it:

- `PrometheusTelemetry`, the core's Telemetry port: money, finished
  recipients and outbox publishing, reported after they are committed;
- `MeasuredBreaker`, a decorator of the core's CircuitBreaker port: every try
  sent to an operator, with its latency and outcome;
- hooks for the adapters: `Metrics.queues` observes a bus (RabbitMQ or
  in-process), `Metrics.db_statement` the SQL engine's statements,
  `Metrics.breaker_state_changed` a ResilientBreaker's circuits and
  `Metrics.outbox_backlog` the periodic backlog reading, and
  `Metrics.watch_operator` an SMPP operator's binds and deliver_sm (read from
  the operator at each scrape, by `SmppCollector`);
- `MetricsHttpServer`, the registry over HTTP for processes without the API.

Every label takes values from a small fixed set (or from configuration:
operator and queue names), so no series grows with traffic. Known label
values are created at zero up front, so a counter is there before its first
event; gauges appear only in the processes that set them (the backlog in
relay/serve, a circuit's state where operators are called).
"""

from smsgw_adapters.observability.metrics.catalogue import Metrics
from smsgw_adapters.observability.metrics.http_server import MetricsHttpServer
from smsgw_adapters.observability.metrics.measured import MeasuredBreaker, PrometheusTelemetry
from smsgw_adapters.observability.metrics.queues import QueueCounters, priority_label

__all__ = [
    "MeasuredBreaker",
    "Metrics",
    "MetricsHttpServer",
    "PrometheusTelemetry",
    "QueueCounters",
    "priority_label",
]
