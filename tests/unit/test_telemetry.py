"""The use cases report committed facts to the Telemetry port, and only those."""

from __future__ import annotations

from datetime import timedelta

import pytest
from core_world import World, fund, send

from smsgw_core.errors import InsufficientBalance
from smsgw_core.ledger import TransactionType
from smsgw_core.messages import MessageType, SmsStatus
from smsgw_core.operators import ErrorClass
from smsgw_core.pricing import Tariff
from smsgw_core.services.accounts import Accounts, TopUp
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.send_sms import SendSms, SmsSender
from smsgw_core.telemetry import RecordingTelemetry
from smsgw_core.testing import (
    FakeClock,
    InMemoryDatabase,
    RecordingBus,
    ScriptedOperator,
    SequentialIds,
)


async def test_money_statuses_and_publishing_are_reported_after_commit() -> None:
    world = World(a=ScriptedOperator("A", lambda sms: "ok" if sms.recipient.endswith("1")
                                     else ErrorClass.PERMANENT))
    seen = world.telemetry
    await fund(world, 10, user=1)
    await send(world, ("09120000001", "09120000002"), "hi", MessageType.EXPRESS, user=1)
    with pytest.raises(InsufficientBalance):  # rolled back: not reported
        await send(world, ("09120000003", "09120000004"), "hi", MessageType.EXPRESS, user=1)
    await world.relay.relay_once()
    world.clock.advance(timedelta(seconds=2))
    await world.deliverer.deliver(world.bus.published[0])

    assert seen.ledger_moves == [
        (TransactionType.TOPUP, 10, 1), (TransactionType.CHARGE, 6, 1),
        (TransactionType.REFUND, 3, 1),
    ]
    assert seen.relays == [(MessageType.EXPRESS, 1, 0, 0)]
    assert sorted(seen.finishes, key=lambda f: f[1].value) == [
        (MessageType.EXPRESS, SmsStatus.DONE, 2.0), (MessageType.EXPRESS, SmsStatus.FAILED, 2.0),
    ]


async def test_a_failed_publish_is_reported_as_failed() -> None:
    db, clock, ids, bus, seen = (InMemoryDatabase(), FakeClock(), SequentialIds(),
                                 RecordingBus(), RecordingTelemetry())
    await Accounts(db.uow, clock, ids).top_up(TopUp(1, 10))
    await SmsSender(db.uow, clock, ids, Tariff()).send(SendSms(1, "hi", ("09120000001",)))
    bus.fail_with = ConnectionError("broker away")
    await OutboxRelay(db.uow, bus, clock, telemetry=seen).relay_once()
    assert seen.relays == [(MessageType.NORMAL, 0, 1, 0)]
