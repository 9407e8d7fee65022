"""Distributed tracing with OpenTelemetry: one trace per SMS, from the API to the operator.

Configured from the standard OTEL_* variables (`settings`). It is **off** unless
`OTEL_TRACES_EXPORTER` names an exporter (`console`, `otlp`, or both,
comma-separated); off, no SDK provider is installed (`state`) and every helper
here is a shortcut that costs next to nothing (an `if`).

The trace context travels as a W3C carrier (`traceparent`, `tracestate`), a
plain `dict[str, str]` the core stores opaquely (`propagation`):

    API request span ──capture()──► SendSms.trace ─► DeliveryJob.trace (outbox payload)
      └ sms.publish   (TracedBus, child of DeliveryJob.trace; its own context replaces it,
         │              and RabbitMQ carries it in the message headers too)
         └ sms.deliver   (traced_handler, child of the message's carrier)
            └ sms.operator.send  (one per try; HTTP operators inject it into the request)

Spans carry `smsgw.*` attributes (`names`): user_id, sms_identifier, type,
operator, outcome. The spans wrap ports from outside (`decorators`); the
operator's span comes with the delivery log line (`delivery_log`, its TracedOperator).
Tests and benchmarks install a provider of their own with `install()`.
"""

from smsgw_adapters.observability.tracing.decorators import TracedBus, traced_handler
from smsgw_adapters.observability.tracing.delivery_log import (
    TracedOperator,
    delivery_log,
    operator_span,
    sms_identifier_of,
)
from smsgw_adapters.observability.tracing.names import (
    DELIVER_SPAN,
    DONE,
    FAILED,
    OPERATOR,
    OPERATOR_SPAN,
    OUTCOME,
    PUBLISH_SPAN,
    RECIPIENTS,
    SKIPPED,
    SMS_IDENTIFIER,
    TRACER_NAME,
    TYPE,
    USER_ID,
)
from smsgw_adapters.observability.tracing.propagation import (
    capture,
    carrier_from_headers,
    carrier_of,
    extract,
    inject,
    propagated_fields,
)
from smsgw_adapters.observability.tracing.settings import (
    EXPORTERS,
    TracingConfigError,
    configure_tracing,
    exporters_from_env,
    span_json_line,
)
from smsgw_adapters.observability.tracing.spans import (
    annotate,
    child_span,
    delivery_attributes,
    start_child_span,
)
from smsgw_adapters.observability.tracing.state import enabled, install, provider, shutdown

__all__ = [
    "DELIVER_SPAN",
    "DONE",
    "EXPORTERS",
    "FAILED",
    "OPERATOR",
    "OPERATOR_SPAN",
    "OUTCOME",
    "PUBLISH_SPAN",
    "RECIPIENTS",
    "SKIPPED",
    "SMS_IDENTIFIER",
    "TRACER_NAME",
    "TYPE",
    "USER_ID",
    "TracedBus",
    "TracedOperator",
    "TracingConfigError",
    "annotate",
    "capture",
    "carrier_from_headers",
    "carrier_of",
    "child_span",
    "configure_tracing",
    "delivery_attributes",
    "delivery_log",
    "enabled",
    "exporters_from_env",
    "extract",
    "inject",
    "install",
    "operator_span",
    "propagated_fields",
    "provider",
    "shutdown",
    "sms_identifier_of",
    "span_json_line",
    "start_child_span",
    "traced_handler",
]
