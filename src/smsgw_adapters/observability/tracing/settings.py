"""Tracing configured from the standard OTEL_* variables: off unless told where to export."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import IO

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)

from smsgw_adapters.observability.tracing.state import install

EXPORTERS = ("console", "otlp")


class TracingConfigError(ValueError):
    """An OTEL_* variable this process cannot honour (the CLI exits 2)."""


def exporters_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The exporters `OTEL_TRACES_EXPORTER` names; () when tracing is off.

    Unlike the OTel default (`otlp`), unset means off: a gateway traces only
    when told where to. `OTEL_SDK_DISABLED=true` turns it off whatever else says.
    """
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    raw = env.get("OTEL_TRACES_EXPORTER", "none")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in (*EXPORTERS, "none")]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: expected none, console or otlp (comma-separated)"
        )
    protocol = env.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    if "otlp" in names and protocol not in ("", "http/protobuf"):
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is supported"
        )
    return tuple(dict.fromkeys(n for n in names if n != "none"))


def configure_tracing(
    env: Mapping[str, str] | None = None,
    *,
    service_name: str = "smsgw",
    console: IO[str] | None = None,
    set_global: bool = True,
) -> TracerProvider | None:
    """Install a provider with the exporters OTEL_TRACES_EXPORTER names, or nothing.

    `service_name` is the default of `service.name`; OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES override it. The sampler (OTEL_TRACES_SAMPLER),
    the batch processor (OTEL_BSP_*) and the OTLP exporter
    (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT…) read their own
    variables. Called once per process; returns the provider to shut down at exit.
    """
    exporters = exporters_from_env(env)
    if not exporters:
        install(None)
        return None
    if env is None:
        # The stable HTTP attribute names (http.response.status_code…), not the
        # instrumentation's old default; read when the HTTP instrumentation starts.
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    provider = TracerProvider(resource=_resource(service_name))
    for name in exporters:
        if name == "console":
            # Synchronous: a span is one JSON line, written whole, beside the JSON logs.
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
                out=console or sys.stdout, formatter=span_json_line,
            )))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    if set_global:  # for any library instrumentation that asks the API for a tracer
        trace.set_tracer_provider(provider)
    return provider


def _resource(service_name: str) -> Resource:
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    return resource


def span_json_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"
