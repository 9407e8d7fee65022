"""Backpressure in-process: the gate, the backlog monitor and the 503 the API answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime

import pytest
from litestar.testing import AsyncTestClient

from smsgw_app.api.app import ApiServices, create_app
from smsgw_app.api.backpressure import AdmittedSender, BacklogGate
from smsgw_app.config import ConfigError, Settings
from smsgw_app.workers import BacklogMonitor
from smsgw_core.errors import Overloaded
from smsgw_core.ports import Backlog
from smsgw_core.pricing import Tariff
from smsgw_core.services.accounts import Accounts, TopUp
from smsgw_core.services.authenticate import Authenticator
from smsgw_core.services.customers import Customers
from smsgw_core.services.history import History
from smsgw_core.services.keys import Keys
from smsgw_core.services.send_limit import LimitedSender, SendLimits
from smsgw_core.services.send_sms import SendSms, SmsSender
from smsgw_core.system import SystemTokens
from smsgw_core.testing import FakeClock, InMemoryDatabase, SequentialIds

# the existing controllers' parameter style, not this module's concern
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SEND = {"customer_id": 1, "text": "hi", "recipients": ["09120000001"]}


def reading(*events: int) -> list[Backlog]:
    return [Backlog(priority, n, None) for priority, n in zip((10, 0), events, strict=False)]


def test_the_gate_refuses_only_over_the_limit_and_reopens() -> None:
    gate = BacklogGate(limit=5, retry_after_s=7)
    gate.admit()
    gate.update(reading(2, 3), datetime.now())
    gate.admit()  # 5 is not over 5
    gate.update(reading(2, 4), datetime.now())
    with pytest.raises(Overloaded) as refused:
        gate.admit()
    assert (refused.value.waiting, refused.value.limit, refused.value.retry_after_s) == (6, 5, 7)
    assert "6 accepted messages are waiting" in str(refused.value)
    gate.update([], datetime.now())
    gate.admit()


def test_the_limit_is_a_setting() -> None:
    assert Settings.from_env({}).max_backlog == 100_000
    assert Settings.from_env({"SMSGW_MAX_BACKLOG": "0"}).max_backlog == 0
    with pytest.raises(ConfigError, match="SMSGW_MAX_BACKLOG"):
        Settings.from_env({"SMSGW_MAX_BACKLOG": "-1"})


def test_a_zero_limit_never_refuses() -> None:
    gate = BacklogGate(0)
    gate.update(reading(10**9), datetime.now())
    assert not gate.enabled
    gate.admit()
    with pytest.raises(ValueError):
        BacklogGate(-1)


async def test_the_monitor_feeds_every_sink_and_survives_a_failed_reading() -> None:
    db, clock, ids = InMemoryDatabase(), FakeClock(), SequentialIds()
    await Accounts(db.uow, clock, ids).top_up(TopUp(1, 100))
    sender = SmsSender(db.uow, clock, ids, Tariff())
    for _ in range(3):
        await sender.send(SendSms(1, "hi", ("09120000001",)))
    seen: list[int] = []
    twice = asyncio.Event()
    gate = BacklogGate(2)

    def record(backlog: Sequence[Backlog], now: datetime) -> None:
        seen.append(sum(b.events for b in backlog))
        if len(seen) >= 2:
            twice.set()

    monitor = BacklogMonitor(db.uow, clock, [gate.update, record], every=0.01)
    await monitor.refresh()
    assert seen == [3] and gate.due == 3

    calls = 0

    def flaky_uow():  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        return db.uow()

    flaky = BacklogMonitor(flaky_uow, clock, [record], every=0.01)
    task = asyncio.create_task(flaky.run())
    await asyncio.wait_for(twice.wait(), 2)
    flaky.stop()
    await asyncio.wait_for(task, 1)
    assert seen[1] == 3 and calls >= 2


async def test_an_overloaded_send_is_503_with_retry_after_and_writes_nothing() -> None:
    db, clock, ids = InMemoryDatabase(), FakeClock(), SequentialIds()
    accounts = Accounts(db.uow, clock, ids)
    await accounts.top_up(TopUp(1, 100))
    gate = BacklogGate(limit=1, retry_after_s=3)
    sender = AdmittedSender(gate, LimitedSender(SendLimits(db.uow, time.monotonic),
                                                SmsSender(db.uow, clock, ids, Tariff())))
    app = create_app(ApiServices(sender, History(db.uow),
                                 accounts, {}, Authenticator(db.uow, time.monotonic, clock),
                                 Customers(db.uow, clock), Keys(db.uow, clock, SystemTokens())))
    async with AsyncTestClient(app) as client:
        assert (await client.post("/sms/send", json=SEND)).status_code == 200
        gate.update(reading(0, 2), clock.now())
        before = (len(db.state.outbox), await _balance(db))
        refused = await client.post("/sms/send", json=SEND)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "3"
        assert refused.json() == {"message": "overloaded: 2 accepted messages are waiting to "
                                             "be sent (limit 1); retry in 3 s"}
        assert (len(db.state.outbox), await _balance(db)) == before
        gate.update(reading(0, 1), clock.now())
        assert (await client.post("/sms/send", json=SEND)).status_code == 200


async def _balance(db: InMemoryDatabase) -> int | None:
    async with db.uow() as uow:
        return await uow.ledger.balance(1)
