"""Embedding smsgw_core in another Python service, with the in-memory fakes only.

No database, no HTTP, no broker: the core's use cases run against the ports, and
`smsgw_core.testing` implements every port in memory. A real embedder swaps in its
own adapters (a unit of work over its database, its message bus, its operators).

    python examples/embed_core.py
"""

from __future__ import annotations

import asyncio

from smsgw_core.messages import MessageType
from smsgw_core.operators import ErrorClass, OutgoingSms
from smsgw_core.pagination import PageRequest
from smsgw_core.ports import HistoryFilter
from smsgw_core.pricing import Tariff
from smsgw_core.services.accounts import Accounts, TopUp
from smsgw_core.services.deliver import Deliverer
from smsgw_core.services.history import History
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.send_sms import SendSms, SmsSender
from smsgw_core.system import SystemClock, UuidIds
from smsgw_core.testing import (
    CountingCircuitBreaker,
    InMemoryDatabase,
    RecordingBus,
    ScriptedOperator,
)

CUSTOMER = 42


def operator_a(sms: OutgoingSms) -> str | ErrorClass:
    """Operator A refuses one number for good (a permanent error): no failover, a refund."""
    return ErrorClass.PERMANENT if sms.recipient == "09120000000" else f"A-{sms.reference}"


def operator_b(sms: OutgoingSms) -> str | ErrorClass:
    return f"B-{sms.reference}"


async def main() -> None:
    # 1. Wire the core: one database, a clock, ids, a bus, operators in failover order.
    db = InMemoryDatabase()
    clock = SystemClock()
    ids = UuidIds()
    bus = RecordingBus()
    breaker = CountingCircuitBreaker(clock)
    operators = [ScriptedOperator("A", operator_a), ScriptedOperator("B", operator_b)]

    accounts = Accounts(db.uow, clock, ids)
    sender = SmsSender(db.uow, clock, ids, Tariff(normal=1, express=3))
    relay = OutboxRelay(db.uow, bus, clock)
    deliverer = Deliverer(db.uow, clock, operators, breaker)
    history = History(db.uow)

    # 2. Top up (an idempotency key makes a retried payment apply once: the retry,
    # with the same body, answers what the first did).
    payment = TopUp(CUSTOMER, 100, "invoice 2026-001", idempotency_key="inv-1")
    await accounts.top_up(payment)
    balance = await accounts.top_up(payment)
    print(f"topped up: balance {balance}")

    # 3. Send: charged and accepted durably in one unit of work.
    otp = await sender.send(SendSms(
        CUSTOMER, "Your code is 4711", ("+989121234567",), MessageType.EXPRESS, "otp-1",
    ))
    news = await sender.send(SendSms(
        CUSTOMER, "Sale starts today! " * 10, ("09128582812", "09120000000", "09128582812"),
    ))
    print(f"accepted {otp.sms_identifier}: cost {otp.cost}")
    print(f"accepted {news.sms_identifier}: {news.recipients} recipients, "
          f"{news.segments} segments, cost {news.cost}")

    # 4. Relay the outbox to the bus (express first), then deliver what the bus carries.
    report = await relay.relay_once()
    print(f"relayed {report.published} message(s)")
    for delivery in bus.published:
        outcome = await deliverer.deliver(delivery)
        print(f"delivered {delivery.sms_identifier}: "
              f"done {outcome.done}, failed {outcome.failed}")

    # 5. Read the balance (refund included) and the per-recipient history.
    view = await accounts.view(CUSTOMER, PageRequest.parse(10, None))
    print(f"balance {view.balance}")
    for tx in view.transactions.items:
        print(f"  {tx.type.value:<7} {tx.amount:>+5}  {tx.transaction_id}")
    page = await history.query(HistoryFilter(CUSTOMER), PageRequest.parse(10, None))
    for m in page.items:
        print(f"  {m.sms_identifier} {m.recipient:<14} {m.status.value:<7} {m.provider or '-'}")
    print(f"embed_core OK: balance {view.balance}, {len(page.items)} messages")


if __name__ == "__main__":
    asyncio.run(main())
