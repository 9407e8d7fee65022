"""A wired-up core on the in-memory fakes, shared by the use-case tests."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from smsgw_core.ledger import Transaction
from smsgw_core.messages import MessageType, RecipientMessage
from smsgw_core.outbox import DeliveryJob, RetryPolicy
from smsgw_core.pricing import Tariff
from smsgw_core.services.accounts import Accounts, TopUp
from smsgw_core.services.deliver import Deliverer
from smsgw_core.services.history import History
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.send_sms import Accepted, SendSms, SmsSender
from smsgw_core.telemetry import RecordingTelemetry
from smsgw_core.testing import (
    CountingCircuitBreaker,
    FakeClock,
    InMemoryDatabase,
    RecordingBus,
    ScriptedOperator,
    SequentialIds,
)
from smsgw_core.validity import DeliveryPolicy


@dataclass
class World:
    tariff: Tariff = field(default_factory=Tariff)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    validity: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    db: InMemoryDatabase = field(default_factory=InMemoryDatabase)
    clock: FakeClock = field(default_factory=FakeClock)
    ids: SequentialIds = field(default_factory=SequentialIds)
    bus: RecordingBus = field(default_factory=RecordingBus)
    a: ScriptedOperator = field(default_factory=lambda: ScriptedOperator("A"))
    b: ScriptedOperator = field(default_factory=lambda: ScriptedOperator("B"))
    telemetry: RecordingTelemetry = field(default_factory=RecordingTelemetry)
    breaker_threshold: int = 1000

    def __post_init__(self) -> None:
        self.breaker = CountingCircuitBreaker(
            self.clock, threshold=self.breaker_threshold, reset=timedelta(seconds=30)
        )
        seen = self.telemetry  # what every use case reported, after its commits
        self.sender = SmsSender(self.db.uow, self.clock, self.ids, self.tariff, telemetry=seen)
        self.accounts = Accounts(self.db.uow, self.clock, self.ids, telemetry=seen)
        self.relay = OutboxRelay(
            self.db.uow, self.bus, self.clock, self.policy, self.validity, telemetry=seen
        )
        self.deliverer = Deliverer(
            self.db.uow, self.clock, [self.a, self.b], self.breaker, self.validity, telemetry=seen
        )
        self.history = History(self.db.uow)

    # read-only views of the committed state
    def transactions(self, customer_id: int | None = None) -> list[Transaction]:
        return [
            t for _, t in self.db.state.transactions
            if customer_id is None or t.customer_id == customer_id
        ]

    def messages(self, sms_identifier: str | None = None) -> list[RecipientMessage]:
        return [
            m for _, m in self.db.state.messages
            if sms_identifier is None or m.sms_identifier == sms_identifier
        ]

    def balance(self, customer_id: int) -> int | None:
        return self.db.state.balances.get(customer_id)

    async def relay_and_deliver(self) -> None:
        """Publish everything due, then deliver what the bus received (once each)."""
        start = len(self.bus.published)
        await self.relay.relay_once()
        for delivery in self.bus.published[start:]:
            await self.deliverer.deliver(delivery)


# -- builders the use-case tests share -------------------------------------------------

U = 1  # the customer most tests use
N1, N2, N3 = "09128582812", "091285284834", "+989121234567"


@contextmanager
def writes_nothing(world: World) -> Iterator[None]:
    before, commits = copy.deepcopy(world.db.state), world.db.commits
    yield
    assert world.db.commits == commits
    assert world.db.state == before


async def fund(world: World, amount: int = 1000, user: int = U) -> None:
    await world.accounts.top_up(TopUp(user, amount))


async def send(
    world: World,
    recipients: tuple[str, ...] = (N1,),
    text: str = "hello",
    type: MessageType = MessageType.NORMAL,
    key: str | None = None,
    user: int = U,
) -> Accepted:
    return await world.sender.send(SendSms(user, text, recipients, type, key))


def outbox_rows(world: World) -> list[Any]:
    return list(world.db.state.outbox.values())


async def accepted_delivery(
    world: World, recipients: tuple[str, ...] = (N1,), type: MessageType = MessageType.NORMAL
) -> DeliveryJob:
    await send(world, recipients, type=type)
    start = len(world.bus.published)
    await world.relay.relay_once()
    [delivery] = world.bus.published[start:]
    return delivery
