"""The Litestar application over the use cases it is given."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.plugins.prometheus import PrometheusController

from smsgw_adapters.observability import tracing
from smsgw_app.api.allow import AllowEveryMethod
from smsgw_app.api.backpressure import AdmittedSender
from smsgw_app.api.balance import BalanceController
from smsgw_app.api.document import SECURITY, openapi_config, swagger_assets
from smsgw_app.api.errors import EXCEPTION_HANDLERS
from smsgw_app.api.health import ReadinessCheck, healthz, readyz
from smsgw_app.api.http_metrics import HttpMetrics
from smsgw_app.api.operators import RECEIPT_TOKENS, OperatorsController
from smsgw_app.api.sms import SmsController
from smsgw_app.api.v1.admin import CustomersController, KeysController
from smsgw_app.api.v1.auth import AUTHENTICATOR, LEGACY_AUTH, METRICS_TOKEN, metrics_token
from smsgw_app.api.v1.balance import BalanceV1Controller
from smsgw_app.api.v1.messages import MessagesController
from smsgw_app.api.v1.webhooks import CustomerWebhookController, WebhookController
from smsgw_app.config import LegacyAuth
from smsgw_core.services.accounts import Accounts
from smsgw_core.services.authenticate import Authenticator
from smsgw_core.services.customers import Customers
from smsgw_core.services.history import History
from smsgw_core.services.keys import Keys
from smsgw_core.services.receipts import ReceiptIntake
from smsgw_core.services.webhook_endpoints import WebhookEndpoints


@dataclass(frozen=True)
class ApiServices:
    """What the controllers use; the composition root builds it once at start."""

    # The whole chain (container.py), the gate outermost: the handlers' annotation,
    # which Litestar checks each request (a Protocol it could not).
    sender: AdmittedSender
    history: History
    accounts: Accounts
    readiness_checks: dict[str, ReadinessCheck]
    authenticator: Authenticator
    customers: Customers
    keys: Keys
    legacy_auth: LegacyAuth = "none"  # SMSGW_LEGACY_AUTH
    metrics_token: str = ""  # SMSGW_METRICS_TOKEN; empty: /metrics open
    cors_origins: tuple[str, ...] = ()  # SMSGW_CORS_ORIGINS; empty: no CORS headers
    # Operators' receipts (POST /operators/{name}/receipts) and each one's token.
    receipts: ReceiptIntake | None = None
    receipt_tokens: dict[str, str] = field(default_factory=dict)
    webhooks: WebhookEndpoints | None = None  # /v1/webhook


log = logging.getLogger("smsgw.api")

# Probes and scrapes are not worth a trace each.
UNTRACED_PATHS = ["^/metrics", "^/healthz", "^/readyz", "^/swagger"]


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False
    guards = [metrics_token]


def create_app(services: ApiServices) -> Litestar:
    keyed = services.legacy_auth == "key"
    if not keyed:
        log.warning("SMSGW_LEGACY_AUTH=none: /sms/send, /sms/history, /balance and "
                    "/balance/add are open to anyone who reaches this port (as the Go "
                    "service's were); SMSGW_LEGACY_AUTH=key puts them behind API keys")

    def value(item: Any) -> Provide:
        return Provide(lambda: item, use_cache=True, sync_to_thread=False)

    return Litestar(
        plugins=_tracing_plugins(),
        route_handlers=[
            # The seed routes: in the document behind the bearer scheme only when
            # they are (else a client, or a fuzzer, would expect them to refuse).
            Router("/", route_handlers=[SmsController, BalanceController],
                   security=SECURITY if keyed else None),
            MessagesController, BalanceV1Controller,
            CustomersController, KeysController, OperatorsController,
            WebhookController, CustomerWebhookController,
            healthz, readyz, MetricsController,
            swagger_assets(),
        ],
        state=State({AUTHENTICATOR: services.authenticator, LEGACY_AUTH: services.legacy_auth,
                     METRICS_TOKEN: services.metrics_token,
                     RECEIPT_TOKENS: services.receipt_tokens}),
        dependencies={
            # One dependency for the send handler: Litestar resolves two or more
            # in a task group per request, which costs the hot path more than the
            # send's own validation; so the backlog gate and the customer's send
            # limit are decorators of the sender, not dependencies of their own.
            **{name: value(getattr(services, name)) for name in (
                "sender", "history", "accounts", "readiness_checks", "customers", "keys",
                "receipts", "webhooks")},
        },
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,  # the process configures logging, not the framework
        middleware=[HttpMetrics, AllowEveryMethod],
        openapi_config=openapi_config(version="0.1.0"),
        cors_config=_cors(services.cors_origins),
    )


def _cors(origins: tuple[str, ...]) -> CORSConfig | None:
    """CORS for the browser origins named, else none: a browser on another site
    then cannot read the API's answers (its key would have to be in the page)."""
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        expose_headers=["Retry-After", "WWW-Authenticate"],
        max_age=600,
    )


def _tracing_plugins() -> list[OpenTelemetryPlugin]:
    """A server span per request (continuing a client's traceparent), when tracing is on."""
    provider = tracing.provider()
    if provider is None:
        return []  # off: not even the middleware
    return [OpenTelemetryPlugin(OpenTelemetryConfig(
        tracer_provider=provider,
        exclude=UNTRACED_PATHS,
        exclude_spans=["receive", "send"],  # one span per request, not one per ASGI message
    ))]
