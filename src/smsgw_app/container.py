"""The composition root: the one place that chooses an adapter for every port,
builds every chain of decorators, and assembles the services a process runs.

`Container` is the whole gateway; its database part is `database.Database`,
which the commands that need nothing else (migrate, keys, outbox, seed, the
load test's delivery watch) use alone. How each adapter is made from the
settings is in assembly.py (plain functions) and, for operators, in
operator_kinds.py (one row per URL scheme); which of them a process gets is
decided here and in database.py only.

Every provider hands out a plain object: the lifecycles (migrating and disposing
the engine, connecting and closing the bus, closing the operators' HTTP client
and their SMPP binds) are Resources beside the objects, started by
`processes.started` and `database.opened`.
"""

from __future__ import annotations

import time

from dependency_injector import containers, providers

from smsgw_adapters.observability import MeasuredBreaker, Metrics, PrometheusTelemetry
from smsgw_adapters.observability.tracing import TracedBus, traced_handler
from smsgw_adapters.operators.http import operator_http_client
from smsgw_adapters.resilience import ResilientBreaker
from smsgw_adapters.sql.capacity import SqlOperatorCapacity
from smsgw_adapters.webhooks.address_guard import GuardedAddresses
from smsgw_app import assembly
from smsgw_app.api.backpressure import AdmittedSender, BacklogGate
from smsgw_app.config import Settings
from smsgw_app.database import Database
from smsgw_app.operator_kinds import OperatorLinks
from smsgw_app.wakeup import Wakeup
from smsgw_app.workers import KeyUsageWriter
from smsgw_core.messages import MessageType
from smsgw_core.outbox import RetryPolicy
from smsgw_core.pricing import Tariff
from smsgw_core.services.accounts import Accounts
from smsgw_core.services.authenticate import Authenticator
from smsgw_core.services.customers import Customers
from smsgw_core.services.deliver import Deliverer
from smsgw_core.services.group_commit import GroupCommit
from smsgw_core.services.history import History
from smsgw_core.services.receipts import ReceiptIntake
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.send_limit import LimitedSender, SendLimits
from smsgw_core.services.send_sms import SmsSender
from smsgw_core.services.webhook_endpoints import WebhookEndpoints
from smsgw_core.system import UuidIds


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    # The lanes a worker process consumes: `smsgw worker --lane` (all, express, normal).
    lanes = providers.Dependency(instance_of=frozenset, default=frozenset(MessageType))

    # One registry per process (prometheus_client's default), whatever the container.
    metrics = providers.Singleton(Metrics.default)
    telemetry = providers.Singleton(PrometheusTelemetry, metrics)

    # ---- adapters ---------------------------------------------------------------------
    db = providers.Container(
        Database, url=settings.provided.database_url, on_statement=metrics.provided.db_statement
    )
    engine = db.engine
    database = db.migrated
    bus_kind = providers.Callable(assembly.bus_kind, settings)
    bus = providers.Selector(
        bus_kind,
        inprocess=providers.Singleton(assembly.inprocess_bus, metrics),
        rabbitmq=providers.Singleton(assembly.rabbit_bus, settings, metrics),
    )
    broker = providers.Resource(assembly.connected, bus)
    http_client = providers.Singleton(
        operator_http_client, timeout_s=settings.provided.operator_timeout_s
    )
    # The connections operators keep (SMPP binds), closed with the HTTP client.
    operator_links = providers.Singleton(OperatorLinks)
    http_session = providers.Resource(assembly.closing, http_client, operator_links)
    uow = db.uow
    clock = db.clock
    ids = providers.Singleton(UuidIds)
    tariff = providers.Singleton(
        Tariff, normal=settings.provided.price_normal, express=settings.provided.price_express
    )
    wakeup = providers.Singleton(Wakeup)
    operator_capacity = providers.Singleton(SqlOperatorCapacity, engine)
    receipt_policy = providers.Singleton(assembly.receipt_policy_of, settings)
    # Receipts an operator's adapter gets in this process (an in-process simulator's,
    # an SMPP session's) go to the same intake as the receipts route's.
    receipts = providers.Singleton(
        ReceiptIntake, uow, clock, receipt_policy, telemetry=telemetry)
    operators = providers.Singleton(assembly.build_operators, settings, http_client,
                                    operator_capacity, receipts, operator_links, metrics)
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
    delivery_policy = providers.Singleton(assembly.delivery_policy_of, settings)
    admission = providers.Singleton(BacklogGate, settings.provided.max_backlog)

    secret_box = providers.Singleton(assembly.secret_box, settings)
    webhook_addresses = providers.Singleton(
        GuardedAddresses, providers.Singleton(assembly.webhook_guard, settings))

    # ---- use cases --------------------------------------------------------------------
    routes = providers.Singleton(lambda s: s.routing() if s.routes else None, settings)
    sms_sender = providers.Singleton(
        SmsSender, uow, clock, ids, tariff, wakeup, telemetry=telemetry, routes=routes,
    )
    send_limits = providers.Singleton(
        SendLimits, uow, time.monotonic, settings.provided.customer_rate)
    # What the API sends with, outermost first: the backlog gate (503 before anything
    # is counted or written), the customer's send limit (429), then group commit
    # (concurrent sends share a transaction, SMSGW_ACCEPT_BATCH) around the use case.
    # docs/architecture.md draws this chain; tests/unit/test_wiring.py keeps it so.
    sender = providers.Singleton(
        AdmittedSender, admission, providers.Singleton(
            LimitedSender, send_limits, providers.Singleton(
                GroupCommit, sms_sender, max_group=settings.provided.accept_batch)))
    accounts = providers.Singleton(Accounts, uow, clock, ids, telemetry=telemetry)
    history = providers.Singleton(History, uow)
    webhooks = providers.Singleton(
        WebhookEndpoints, uow, clock, secret_box, webhook_addresses, ids)
    authenticator = providers.Singleton(Authenticator, uow, time.monotonic, clock)
    customers = providers.Singleton(Customers, uow, clock)
    keys = db.keys
    # The bus as the relay uses it: a span "sms.publish" per delivery when tracing.
    traced_bus = providers.Singleton(TracedBus, bus, system=bus_kind)
    relay = providers.Factory(
        OutboxRelay, uow, traced_bus, clock, retry_policy, delivery_policy,
        batch_size=settings.provided.relay_batch, telemetry=telemetry,
    )
    deliverer = providers.Singleton(
        Deliverer, uow, clock, operators, breaker, delivery_policy, telemetry=telemetry,
        receipts=providers.Callable(assembly.kept_receipts, settings, receipt_policy),
        routes=routes,
    )
    # A span "sms.deliver" per delivery when tracing.
    deliver = providers.Singleton(traced_handler, deliverer.provided.deliver)
    consumer = providers.Selector(
        bus_kind,
        inprocess=providers.Singleton(assembly.inprocess_consumer, bus, settings, deliver),
        rabbitmq=providers.Singleton(
            assembly.rabbit_consumer, bus, settings, metrics, deliver, lanes
        ),
    )

    # ---- the services a process runs ------------------------------------------------------
    readiness = providers.Dict(
        database=providers.Callable(assembly.database_check, engine),
        broker=providers.Callable(assembly.broker_check, bus),
    )
    api_services = providers.Singleton(
        assembly.ApiServices, sender, history, accounts, readiness, authenticator, customers,
        keys, legacy_auth=settings.provided.legacy_auth,
        metrics_token=settings.provided.metrics_token,
        cors_origins=settings.provided.cors_origins,
        receipts=receipts,
        receipt_tokens=providers.Callable(assembly.receipt_tokens, settings),
        webhooks=webhooks,
    )
    # Called with host= and port=.
    http_service = providers.Factory(assembly.http_server, settings, api_services)
    key_usage = providers.Factory(KeyUsageWriter, authenticator.provided.flush_usage)
    relay_services = providers.Factory(
        assembly.relay_services, settings, relay.provider, wakeup, bus, receipts
    )
    delivery_services = providers.Factory(assembly.delivery_services, settings, consumer)
    webhook_services = providers.Factory(
        assembly.webhook_services, settings, uow, clock, secret_box, telemetry)
    # Called with gauges= and admission=: which readers of the backlog the process has.
    backlog_monitor = providers.Factory(
        assembly.backlog_monitor, uow, clock, metrics, admission
    )
