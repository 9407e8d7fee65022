"""Fixtures shared by every kind of test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from smsgw_adapters.observability import tracing

# No time limit per example: property tests assert on values, and a loaded
# machine (2 cores, a gateway running beside them) once took 0.5 s over
# hypothesis's default 200 ms. Speed is the benchmarks' business.
settings.register_profile("smsgw", deadline=None)
settings.load_profile("smsgw")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test, its finished spans kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
