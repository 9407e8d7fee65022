"""The Litestar application, wired to the container's use cases."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from smsgw_app.api.balance import BalanceController
from smsgw_app.api.errors import EXCEPTION_HANDLERS
from smsgw_app.api.health import ReadinessCheck, healthz, readyz
from smsgw_app.api.sms import SmsController
from smsgw_app.container import Container


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def create_app(container: Container, readiness: dict[str, ReadinessCheck]) -> Litestar:
    prometheus = PrometheusConfig(app_name="smsgw", prefix="smsgw_http", group_path=True,
                                  exclude=["/metrics"])

    def provide(provider: Any) -> Provide:
        async def dependency() -> Any:
            return provider()
        return Provide(dependency)

    async def readiness_checks() -> dict[str, ReadinessCheck]:
        return readiness

    return Litestar(
        route_handlers=[SmsController, BalanceController, healthz, readyz, MetricsController],
        dependencies={
            "sender": provide(container.sender),
            "history": provide(container.history),
            "accounts": provide(container.accounts),
            "readiness_checks": Provide(readiness_checks),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[prometheus.middleware],
        openapi_config=OpenAPIConfig(
            title="smsgw",
            version="0.1.0",
            description="Prepaid SMS gateway: charge, accept durably, deliver with failover.",
            path="/swagger",
            render_plugins=[SwaggerRenderPlugin(path=["/", "/index.html"])],
        ),
    )
