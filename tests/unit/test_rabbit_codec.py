"""The trace context a RabbitMQ message carries in its headers: a pure reading."""

from __future__ import annotations

from smsgw_adapters.trace_carrier import carrier_from_headers

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_trace_fields_are_read_as_strings_and_the_rest_ignored() -> None:
    headers = {"traceparent": PARENT.encode(), "tracestate": "a=1", "x-delivery-count": 2,
               "baggage": ""}
    assert carrier_from_headers(headers) == {"traceparent": PARENT, "tracestate": "a=1"}
    assert carrier_from_headers(None) == {}


def test_the_fields_are_the_callers_propagators() -> None:
    assert carrier_from_headers({"b3": "x", "traceparent": PARENT}, ("b3",)) == {"b3": "x"}
