"""Top-ups on every backend: the maximum balance, and Idempotency-Key rules as for sends."""

from __future__ import annotations

import asyncio

import pytest

from smsgw_core.errors import IdempotencyConflict, InvalidRequest
from smsgw_core.ledger import MAX_BALANCE
from smsgw_core.messages import MessageType
from smsgw_core.ports import UnitOfWorkFactory
from smsgw_core.pricing import Tariff
from smsgw_core.services.accounts import Accounts, TopUp
from smsgw_core.services.send_sms import SendSms, SmsSender
from smsgw_core.testing import FakeClock, SequentialIds


def accounts(uow_factory: UnitOfWorkFactory) -> Accounts:
    return Accounts(uow_factory, FakeClock(), SequentialIds("tx"))


async def ledger_of(
    uow_factory: UnitOfWorkFactory, customer_id: int
) -> tuple[int | None, list[int]]:
    """(balance, amounts of the customer's transactions, newest first)."""
    async with uow_factory() as uow:
        balance = await uow.ledger.balance(customer_id)
        rows = await uow.ledger.transactions(customer_id, 1000, None)
    return balance, [tx.amount for _, tx in rows]


async def test_a_top_up_past_the_maximum_balance_is_refused_and_writes_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    acc = accounts(uow_factory)
    assert await acc.top_up(TopUp(1, MAX_BALANCE - 5)) == MAX_BALANCE - 5
    for amount, key in ((6, None), (MAX_BALANCE, None), (6, "retry-me")):
        with pytest.raises(InvalidRequest) as refused:
            await acc.top_up(TopUp(1, amount, idempotency_key=key))
        assert refused.value.field == "balance"
    assert await ledger_of(uow_factory, 1) == (MAX_BALANCE - 5, [MAX_BALANCE - 5])
    async with uow_factory() as uow:  # the refused key was not spent
        assert await uow.idempotency.get(-1, "retry-me") is None
    assert await acc.top_up(TopUp(1, 5, idempotency_key="retry-me")) == MAX_BALANCE
    with pytest.raises(InvalidRequest):
        await acc.top_up(TopUp(2, MAX_BALANCE + 1))  # a single amount over it, too
    assert await ledger_of(uow_factory, 2) == (None, [])


async def test_a_top_up_key_is_1_to_100_characters(uow_factory: UnitOfWorkFactory) -> None:
    acc = accounts(uow_factory)
    customer_id = 2**63 - 1  # the longest user id, too: the transaction id must still fit
    assert await acc.top_up(TopUp(customer_id, 7, idempotency_key="k" * 100)) == 7
    assert await acc.top_up(TopUp(customer_id, 7, idempotency_key="k" * 100)) == 7
    for key in ("", "k" * 101):
        with pytest.raises(InvalidRequest) as refused:
            await acc.top_up(TopUp(customer_id, 7, idempotency_key=key))
        assert refused.value.field == "Idempotency-Key"
    assert await ledger_of(uow_factory, customer_id) == (7, [7])


async def test_a_top_up_key_replays_the_first_answer_and_refuses_another_body(
    uow_factory: UnitOfWorkFactory,
) -> None:
    acc = accounts(uow_factory)
    first = TopUp(1, 70, "invoice 17", "invoice-17")
    assert await acc.top_up(first) == 70
    assert await acc.top_up(TopUp(1, 30)) == 100
    assert await acc.top_up(first) == 70  # what the first answered, not today's balance
    for other in (TopUp(1, 80, "invoice 17", "invoice-17"), TopUp(1, 70, "", "invoice-17")):
        with pytest.raises(IdempotencyConflict):
            await acc.top_up(other)
    assert await acc.top_up(TopUp(2, 80, "invoice 17", "invoice-17")) == 80  # per user
    assert await ledger_of(uow_factory, 1) == (100, [30, 70])


async def test_concurrent_top_ups_with_one_key_credit_once(uow_factory: UnitOfWorkFactory) -> None:
    acc = accounts(uow_factory)

    async def top_up(amount: int) -> int | str:
        try:
            return await acc.top_up(TopUp(1, amount, idempotency_key="once"))
        except IdempotencyConflict:
            return "conflict"

    answers = await asyncio.gather(*(top_up(10 if i % 2 else 20) for i in range(8)))
    balance, amounts = await ledger_of(uow_factory, 1)
    assert balance in (10, 20) and amounts == [balance]
    assert sorted(answers, key=str) == sorted([balance] * 4 + ["conflict"] * 4, key=str)


async def test_top_up_keys_and_send_keys_never_meet(uow_factory: UnitOfWorkFactory) -> None:
    acc = accounts(uow_factory)
    sender = SmsSender(uow_factory, FakeClock(), SequentialIds("sms"), Tariff())
    assert await acc.top_up(TopUp(1, 10, idempotency_key="k")) == 10
    sent = await sender.send(SendSms(1, "hi", ("09120000001",), MessageType.NORMAL, "k"))
    assert await acc.top_up(TopUp(1, 10, idempotency_key="k")) == 10
    assert await sender.send(SendSms(1, "hi", ("09120000001",), MessageType.NORMAL, "k")) == sent
    assert await ledger_of(uow_factory, 1) == (9, [-1, 10])
