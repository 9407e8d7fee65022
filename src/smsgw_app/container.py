"""The composition root: the one place that chooses an adapter for every port."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

import aiohttp
from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.inprocess import LANES, InProcessBus
from smsgw_adapters.observability import MeasuredBreaker, Metrics, PrometheusTelemetry
from smsgw_adapters.observability.tracing import TracedBus, TracedOperator
from smsgw_adapters.operators.http import HttpOperator, operator_http_client_resource
from smsgw_adapters.operators.simulated import SimulatedOperator
from smsgw_adapters.rabbit import RabbitBus, RabbitTopology
from smsgw_adapters.resilience import ResilientBreaker
from smsgw_adapters.sql.engine import (
    StatementObserver,
    create_engine,
    observe_statements,
    upgrade_to_head,
)
from smsgw_adapters.sql.uow import sql_uow_factory
from smsgw_app.api.backpressure import BacklogGate
from smsgw_app.config import Settings
from smsgw_app.wakeup import Wakeup
from smsgw_core.fakes import SystemClock, UuidIds
from smsgw_core.outbox import RetryPolicy
from smsgw_core.ports import Operator
from smsgw_core.pricing import Tariff
from smsgw_core.services.accounts import Accounts
from smsgw_core.services.deliver import Deliverer
from smsgw_core.services.group_commit import GroupCommit
from smsgw_core.services.history import History
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.send_sms import SmsSender
from smsgw_core.validity import DeliveryPolicy

T = TypeVar("T")


async def resolve(provider: Callable[[], T]) -> T:
    """A provider's object. Providers built on an async resource (the engine)
    hand out awaitables; the composition root resolves each once at start."""
    value: Any = provider()
    return cast(T, await value if inspect.isawaitable(value) else value)


async def database(
    url: str, on_statement: StatementObserver | None = None
) -> AsyncIterator[AsyncEngine]:
    """The engine, migrated to head before anything uses it; disposed at shutdown."""
    engine = create_engine(url)
    if on_statement is not None:
        observe_statements(engine, on_statement)
    try:
        await upgrade_to_head(engine)
        yield engine
    finally:
        await engine.dispose()


def topology(settings: Settings) -> RabbitTopology:
    return RabbitTopology(
        normal_queue=settings.normal_queue, express_queue=settings.express_queue,
        dead_letter_queue=settings.dead_letter_queue, prefetch=settings.prefetch,
        delivery_limit=settings.delivery_limit,
    )


async def message_bus(
    settings: Settings, metrics: Metrics
) -> AsyncIterator[InProcessBus | RabbitBus]:
    """The in-process bus, or a connected RabbitMQ publisher closed at shutdown."""
    if settings.embedded_bus:
        yield InProcessBus(observer=metrics.queues.declare(LANES.values()))
        return
    queues = topology(settings)
    bus = RabbitBus(settings.broker_url, queues,
                    observer=metrics.queues.declare(queues.work_queues))
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


def relay_bus(bus: InProcessBus | RabbitBus) -> TracedBus:
    """The bus as the relay uses it: a span "sms.publish" per delivery when tracing."""
    return TracedBus(bus, system="rabbitmq" if isinstance(bus, RabbitBus) else "inprocess")


def build_operators(settings: Settings, client: aiohttp.ClientSession) -> list[Operator]:
    operators: list[Operator] = []
    for spec in settings.operators:
        if spec.scheme in ("http", "https"):
            operators.append(
                HttpOperator(spec.name, spec.url, client, settings.operator_timeout_s)
            )
            continue
        params = spec.params()
        operators.append(SimulatedOperator(
            spec.name,
            fail_rate=float(params.get("fail_rate", 0)),
            latency_ms=float(params.get("latency_ms", 0)),
            reject_prefix=params.get("reject_prefix", ""),
            seed=int(params["seed"]) if "seed" in params else None,
        ))
    # Every try of every operator: a client span when tracing, and a delivery log line.
    return [TracedOperator(operator) for operator in operators]


def delivery_policy_of(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(validity=timedelta(seconds=settings.message_ttl_s),
                          lease=timedelta(seconds=settings.delivery_lease_s))


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    # One registry per process (prometheus_client's default), whatever the container.
    metrics = providers.Singleton(Metrics.default)
    telemetry = providers.Singleton(PrometheusTelemetry, metrics)

    engine = providers.Resource(
        database, settings.provided.database_url, metrics.provided.db_statement
    )
    bus = providers.Resource(message_bus, settings, metrics)
    http_client = providers.Resource(
        operator_http_client_resource, timeout_s=settings.provided.operator_timeout_s
    )
    uow = providers.Singleton(sql_uow_factory, engine)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidIds)
    tariff = providers.Singleton(
        Tariff, normal=settings.provided.price_normal, express=settings.provided.price_express
    )
    wakeup = providers.Singleton(Wakeup)
    operators = providers.Singleton(build_operators, settings, http_client)
    breaker = providers.Singleton(
        MeasuredBreaker,
        providers.Singleton(
            ResilientBreaker,
            window_s=settings.provided.breaker_window_s,
            min_calls=settings.provided.breaker_min_calls,
            failure_rate=settings.provided.breaker_failure_rate,
            reset_s=settings.provided.breaker_reset_s,
            attempts=providers.Callable(lambda s: s.operator_retries + 1, settings),
            on_state_change=metrics.provided.breaker_state_changed,
        ),
        metrics,
        operators=providers.Callable(lambda s: [o.name for o in s.operators], settings),
    )
    retry_policy = providers.Singleton(RetryPolicy)
    delivery_policy = providers.Singleton(delivery_policy_of, settings)
    admission = providers.Singleton(BacklogGate, settings.provided.max_backlog)

    sms_sender = providers.Singleton(
        SmsSender, uow, clock, ids, tariff, wakeup, telemetry=telemetry
    )
    # What the API sends with: concurrent sends share transactions (SMSGW_ACCEPT_BATCH).
    sender = providers.Singleton(
        GroupCommit, sms_sender, max_group=settings.provided.accept_batch
    )
    accounts = providers.Singleton(Accounts, uow, clock, ids, telemetry=telemetry)
    history = providers.Singleton(History, uow)
    traced_bus = providers.Singleton(relay_bus, bus)
    relay = providers.Factory(
        OutboxRelay, uow, traced_bus, clock, retry_policy, delivery_policy,
        batch_size=settings.provided.relay_batch, telemetry=telemetry,
    )
    deliverer = providers.Singleton(
        Deliverer, uow, clock, operators, breaker, delivery_policy, telemetry=telemetry
    )
