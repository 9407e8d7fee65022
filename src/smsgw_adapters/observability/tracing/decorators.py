"""Tracing as decorators around ports: the bus and the delivery handler (an
operator's is `delivery_log.TracedOperator`, beside the span it opens).

The adapters they wrap import nothing of this package: the spans are put
around them where the ports are wired.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from opentelemetry.trace import Span, SpanKind

from smsgw_adapters.observability.tracing.names import (
    DELIVER_SPAN,
    DONE,
    FAILED,
    OUTCOME,
    PUBLISH_SPAN,
    SKIPPED,
)
from smsgw_adapters.observability.tracing.propagation import carrier_of
from smsgw_adapters.observability.tracing.spans import (
    child_span,
    delivery_attributes,
    fail,
    start_child_span,
)
from smsgw_adapters.observability.tracing.state import enabled
from smsgw_core.messages import MessageType
from smsgw_core.outbox import DeliveryJob
from smsgw_core.ports import MessageBus

T = TypeVar("T")


class TracedBus:
    """A MessageBus whose every published delivery gets a span `sms.publish`.

    The span is a child of the delivery's trace (the accepting request), and the
    delivery goes on with the span's own context in `DeliveryJob.trace`: the
    in-process bus carries it as is, RabbitBus also copies it into the message
    headers. The batch is published in one call, as the inner bus expects.
    """

    def __init__(self, inner: MessageBus, system: str = "") -> None:
        self.inner = inner
        self.system = system  # messaging.system: "rabbitmq", "inprocess"

    async def backlog(self) -> Mapping[MessageType, int]:
        return await self.inner.backlog()

    async def publish(self, deliveries: Sequence[DeliveryJob]) -> None:
        if not enabled():
            await self.inner.publish(deliveries)
            return
        spans: list[Span] = []
        traced: list[DeliveryJob] = []
        for delivery in deliveries:
            attributes = delivery_attributes(delivery)
            if self.system:
                attributes["messaging.system"] = self.system
            span = start_child_span(
                PUBLISH_SPAN, delivery.trace, kind=SpanKind.PRODUCER, attributes=attributes
            )
            spans.append(span)
            traced.append(replace(delivery, trace=carrier_of(span)))
        try:
            await self.inner.publish(traced)
        except BaseException as exc:
            for span in spans:
                fail(span, exc, "failed")
            raise
        else:
            for span in spans:
                span.set_attribute(OUTCOME, "published")
        finally:
            for span in spans:
                span.end()


def traced_handler(
    handler: Callable[[DeliveryJob], Awaitable[T]],
) -> Callable[[DeliveryJob], Awaitable[T]]:
    """`handler` (Deliverer.deliver) run inside a span `sms.deliver`, child of the
    delivery's carrier (`DeliveryJob.trace`; RabbitConsumer puts the message headers' there)."""

    async def deliver(delivery: DeliveryJob) -> T:
        if not enabled():
            return await handler(delivery)
        with child_span(
            DELIVER_SPAN, delivery.trace, kind=SpanKind.CONSUMER,
            attributes=delivery_attributes(delivery),
        ) as span:
            try:
                result = await handler(delivery)
            except BaseException:
                span.set_attribute(OUTCOME, "error")
                raise
            _report_delivery(span, result)
            return result

    return deliver


def _report_delivery(span: Span, report: object) -> None:
    counts = {key: getattr(report, name, None) for key, name in
              ((DONE, "done"), (FAILED, "failed"), (SKIPPED, "skipped"))}
    if not all(isinstance(v, int) for v in counts.values()):
        span.set_attribute(OUTCOME, "handled")
        return
    for key, value in counts.items():
        span.set_attribute(key, int(value or 0))
    done, failed = int(counts[DONE] or 0), int(counts[FAILED] or 0)
    outcome = ("partial" if done and failed else "delivered" if done
               else "failed" if failed else "skipped")
    span.set_attribute(OUTCOME, outcome)
