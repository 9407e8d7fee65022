"""The one piece of process state tracing has: the installed provider and its tracer.

Every helper of the package reads `tracer()`; None means tracing is off and
the helper short-circuits (an `if`).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from smsgw_adapters.observability.tracing.names import TRACER_NAME


class _State:
    provider: TracerProvider | None = None
    tracer: Tracer | None = None  # None: tracing off, every helper short-circuits


_state = _State()


def install(provider: trace.TracerProvider | None) -> None:
    """Trace smsgw's spans with `provider` (None: off). Tests install one whose
    processor feeds an InMemorySpanExporter; the API's global provider is left alone."""
    _state.provider = provider if isinstance(provider, TracerProvider) else None
    _state.tracer = None if provider is None else provider.get_tracer(TRACER_NAME)


def shutdown() -> None:
    """Flush and stop the installed provider's exporters (at process exit)."""
    provider = _state.provider
    install(None)
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _state.tracer is not None


def tracer() -> Tracer | None:
    """The tracer of smsgw's spans, None when tracing is off."""
    return _state.tracer


def provider() -> TracerProvider | None:
    """The installed SDK provider (for the HTTP server instrumentation), None when off."""
    return _state.provider
