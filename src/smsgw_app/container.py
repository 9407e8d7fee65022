"""The composition root: the one place that chooses an adapter for every port."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncEngine

from smsgw_adapters.inprocess import InProcessBus
from smsgw_adapters.operators.simulated import SimulatedOperator
from smsgw_adapters.sql.engine import create_engine, upgrade_to_head
from smsgw_adapters.sql.uow import sql_uow_factory
from smsgw_app.config import OperatorSpec, Settings
from smsgw_app.wakeup import Wakeup
from smsgw_core.fakes import CountingCircuitBreaker, SystemClock, UuidIds
from smsgw_core.ports import Operator
from smsgw_core.pricing import Tariff
from smsgw_core.services.accounts import Accounts
from smsgw_core.services.deliver import Deliverer
from smsgw_core.services.history import History
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.send_sms import SmsSender


async def database(url: str) -> AsyncIterator[AsyncEngine]:
    """The engine, migrated to head before anything uses it; disposed at shutdown."""
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
        yield engine
    finally:
        await engine.dispose()


T = TypeVar("T")


async def resolve(provider: Callable[[], T]) -> T:
    """A provider's object. Providers built on an async resource (the engine)
    hand out awaitables; the composition root resolves each once at start."""
    value: Any = provider()
    return cast(T, await value if inspect.isawaitable(value) else value)


def build_operators(specs: tuple[OperatorSpec, ...]) -> list[Operator]:
    operators: list[Operator] = []
    for spec in specs:
        params = spec.params()
        operators.append(SimulatedOperator(
            spec.name,
            fail_rate=float(params.get("fail_rate", 0)),
            latency_ms=float(params.get("latency_ms", 0)),
            reject_prefix=params.get("reject_prefix", ""),
            seed=int(params["seed"]) if "seed" in params else None,
        ))
    return operators


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    engine = providers.Resource(database, settings.provided.database_url)
    uow = providers.Singleton(sql_uow_factory, engine)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidIds)
    tariff = providers.Singleton(
        Tariff, normal=settings.provided.price_normal, express=settings.provided.price_express
    )
    wakeup = providers.Singleton(Wakeup)
    bus = providers.Singleton(InProcessBus)
    operators = providers.Singleton(build_operators, settings.provided.operators)
    breaker = providers.Singleton(
        CountingCircuitBreaker,
        clock,
        threshold=settings.provided.breaker_threshold,
        reset=providers.Factory(timedelta, seconds=settings.provided.breaker_reset_s),
    )

    sender = providers.Singleton(SmsSender, uow, clock, ids, tariff, wakeup)
    accounts = providers.Singleton(Accounts, uow, clock, ids)
    history = providers.Singleton(History, uow)
    relay = providers.Factory(
        OutboxRelay, uow, bus, clock, batch_size=settings.provided.relay_batch
    )
    deliverer = providers.Singleton(Deliverer, uow, clock, operators, breaker)
