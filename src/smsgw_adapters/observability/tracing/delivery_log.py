"""One try of one operator for one recipient: a client span and a log line,
put around every operator by `TracedOperator`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from smsgw_adapters.observability.tracing.names import (
    OPERATOR,
    OPERATOR_SPAN,
    OUTCOME,
    SMS_IDENTIFIER,
)
from smsgw_adapters.observability.tracing.spans import NO_SPAN, fail
from smsgw_adapters.observability.tracing.state import tracer as current_tracer
from smsgw_core.operators import OperatorError, OutgoingSms
from smsgw_core.ports import Operator

delivery_log = logging.getLogger("smsgw.delivery")


def sms_identifier_of(sms: OutgoingSms) -> str:
    """The SMS identifier in a reference `<sms_identifier>:<recipient>`."""
    return sms.reference.rpartition(":")[0] or sms.reference


@contextlib.contextmanager
def _operator_call(operator: str, sms: OutgoingSms, tracer: Tracer | None) -> Iterator[Span]:
    sms_identifier = sms_identifier_of(sms)
    event: dict[str, str] = {
        "sms_identifier": sms_identifier, "recipient": sms.recipient, "operator": operator,
    }
    span_cm: contextlib.AbstractContextManager[Span] = NO_SPAN
    if tracer is not None:
        span_cm = tracer.start_as_current_span(
            OPERATOR_SPAN, kind=SpanKind.CLIENT,
            attributes={OPERATOR: operator, SMS_IDENTIFIER: sms_identifier},
            record_exception=False, set_status_on_exception=False,
        )
    with span_cm as span:
        try:
            yield span
        except OperatorError as exc:
            span.set_attribute(OUTCOME, exc.error_class.value)
            span.set_status(Status(StatusCode.ERROR, exc.reason[:300]))
            level = logging.WARNING if exc.transient else logging.INFO
            delivery_log.log(level, "operator %s did not take the sms: %s", operator, exc.reason,
                             extra={**event, "outcome": exc.error_class.value})
            raise
        except BaseException as exc:
            fail(span, exc, "error")
            raise
        else:
            span.set_attribute(OUTCOME, "sent")
            # DEBUG: at 100 million a day, a line per sent recipient is the log's
            # whole volume; what went wrong stays at INFO and WARNING, and the
            # sent ones are counted (smsgw_operator_sends_total) and traced.
            delivery_log.debug("sms sent", extra={**event, "outcome": "sent"})


def operator_span(operator: str, sms: OutgoingSms) -> contextlib.AbstractContextManager[Span]:
    """One try of one operator for one recipient: a client span, and a log line.

    The span's outcome is `sent`, `transient` or `permanent` (from the
    OperatorError), or `error`; inside it, `inject(headers)` passes the trace on
    to the operator. The line (logger `smsgw.delivery`) says what became of the
    try: a refusal at INFO, a transient failure at WARNING, a send at DEBUG;
    the recipient masked at INFO and above.
    With tracing off only the line is written.
    """
    return _operator_call(operator, sms, current_tracer())


class TracedOperator:
    """An Operator whose every try gets a client span `sms.operator.send` and a
    delivery log line (`operator_span`); the log line is written with tracing off too.

    The span is current while the inner operator sends, so an HTTP operator
    passes its context on in the request headers (the global propagator's
    `inject`) and adds its own attributes to it (`trace.get_current_span()`).
    """

    def __init__(self, inner: Operator) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    async def send(self, sms: OutgoingSms) -> str:
        with operator_span(self.inner.name, sms):
            return await self.inner.send(sms)
