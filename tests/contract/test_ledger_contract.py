"""LedgerRepository: at most once per transaction id, never a negative balance."""

from __future__ import annotations

import contextlib
from datetime import timedelta, timezone

import pytest
from contract_helpers import T0, at, charge, topup

from smsgw_core.errors import DuplicateTransaction, InsufficientBalance
from smsgw_core.ledger import Transaction, TransactionType
from smsgw_core.ports import UnitOfWorkFactory


async def _seed(uow_factory: UnitOfWorkFactory, customer_id: int, amount: int) -> None:
    async with uow_factory() as uow:
        await uow.ledger.apply(topup(f"seed-{customer_id}", customer_id, amount))
        await uow.commit()


async def test_credit_creates_the_account(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        assert await uow.ledger.balance(7) is None
        await uow.ledger.apply(topup("t1", 7, 100))
        await uow.ledger.apply(topup("t2", 7, 50))
        assert await uow.ledger.balance(7) == 150
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ledger.balance(7) == 150


async def test_debit_within_the_balance(uow_factory: UnitOfWorkFactory) -> None:
    await _seed(uow_factory, 1, 100)
    async with uow_factory() as uow:
        await uow.ledger.apply(charge("c1", 1, 100))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) == 0


async def test_overdraft_is_refused_and_changes_nothing(uow_factory: UnitOfWorkFactory) -> None:
    await _seed(uow_factory, 1, 100)
    async with uow_factory() as uow:
        with pytest.raises(InsufficientBalance) as refused:
            await uow.ledger.apply(charge("c1", 1, 101))
        assert (refused.value.customer_id, refused.value.cost) == (1, 101)
        assert await uow.ledger.balance(1) == 100
        assert [t.transaction_id for _, t in await uow.ledger.transactions(1, 10, None)] == [
            "seed-1"
        ]
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) == 100


async def test_a_refused_debit_leaves_nothing_even_if_the_caller_commits(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _seed(uow_factory, 1, 10)
    async with uow_factory() as uow:
        with pytest.raises(InsufficientBalance):
            await uow.ledger.apply(charge("c1", 1, 11))
        await uow.commit()
    async with uow_factory() as uow:
        assert len(await uow.ledger.transactions(1, 10, None)) == 1
        # The refused id was not used up: it applies once the money is there.
        await uow.ledger.apply(topup("t2", 1, 1))
        await uow.ledger.apply(charge("c1", 1, 11))
        assert await uow.ledger.balance(1) == 0


async def test_debit_of_an_unknown_account_is_refused(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        with pytest.raises(InsufficientBalance):
            await uow.ledger.apply(charge("c1", 404, 1))
        assert await uow.ledger.balance(404) is None
        assert await uow.ledger.transactions(404, 10, None) == []


async def test_a_free_charge_needs_an_account(uow_factory: UnitOfWorkFactory) -> None:
    await _seed(uow_factory, 1, 5)
    async with uow_factory() as uow:
        with pytest.raises(InsufficientBalance):
            await uow.ledger.apply(charge("free-404", 404, 0))
        await uow.ledger.apply(charge("free-1", 1, 0))
        assert (await uow.ledger.balance(404), await uow.ledger.balance(1)) == (None, 5)
        assert len(await uow.ledger.transactions(1, 10, None)) == 2


async def test_a_transaction_id_applies_at_most_once(uow_factory: UnitOfWorkFactory) -> None:
    await _seed(uow_factory, 1, 100)
    async with uow_factory() as uow:
        await uow.ledger.apply(charge("c1", 1, 10))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(DuplicateTransaction) as duplicate:
            await uow.ledger.apply(charge("c1", 1, 10))
        assert duplicate.value.transaction_id == "c1"
        # Ids are unique across accounts, not per account.
        with pytest.raises(DuplicateTransaction):
            await uow.ledger.apply(topup("c1", 2, 10))
        assert await uow.ledger.balance(1) == 90
        assert await uow.ledger.balance(2) is None


async def test_a_long_refund_id_fits(uow_factory: UnitOfWorkFactory) -> None:
    refund_id = "refund:0b5d2f5e-8a8c-4d5e-9a51-3b7c1f0e2d4a:+989121234567"
    async with uow_factory() as uow:
        await uow.ledger.apply(topup(refund_id, 1, 3))
        await uow.commit()
    async with uow_factory() as uow:
        [(_, tx)] = await uow.ledger.transactions(1, 10, None)
        assert tx.transaction_id == refund_id


async def test_balance_is_the_sum_of_the_transactions(uow_factory: UnitOfWorkFactory) -> None:
    amounts = [50, -20, -40, 30, -60, -25, 5, -1, 100, -144]
    async with uow_factory() as uow:
        for i, amount in enumerate(amounts):
            tx = topup(f"t{i}", 1, amount) if amount > 0 else charge(f"c{i}", 1, -amount)
            with contextlib.suppress(InsufficientBalance):
                await uow.ledger.apply(tx)
        await uow.commit()
    async with uow_factory() as uow:
        history = await uow.ledger.transactions(1, 100, None)
        balance = await uow.ledger.balance(1)
    assert balance == sum(tx.amount for _, tx in history) >= 0
    assert balance == 104
    assert {tx.transaction_id for _, tx in history} == {"t0", "c1", "t3", "c4", "t6", "c7", "t8"}


async def test_transactions_come_back_as_applied(uow_factory: UnitOfWorkFactory) -> None:
    tehran = timezone(timedelta(hours=3, minutes=30))
    applied = [topup("t1", 1, 100, T0.astimezone(tehran)), charge("c1", 1, 30, at(1))]
    async with uow_factory() as uow:
        for tx in applied:
            await uow.ledger.apply(tx)
        await uow.commit()
    async with uow_factory() as uow:
        stored = [tx for _, tx in await uow.ledger.transactions(1, 10, None)]
    assert stored == applied[::-1]  # aware datetimes compare as instants, whatever the zone


async def test_transactions_are_paginated_newest_first(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        for i in range(7):
            await uow.ledger.apply(topup(f"mine-{i}", 1, 1, at(i)))
            await uow.ledger.apply(topup(f"other-{i}", 2, 1, at(i)))
        await uow.commit()
    seen: list[str] = []
    before: int | None = None
    async with uow_factory() as uow:
        while page := await uow.ledger.transactions(1, 3, before):
            positions = [position for position, _ in page]
            assert positions == sorted(positions, reverse=True)
            assert before is None or positions[0] < before
            seen += [tx.transaction_id for _, tx in page]
            before = positions[-1]
    assert seen == [f"mine-{i}" for i in reversed(range(7))]


async def test_debit_many_applies_every_charge_in_one_go(uow_factory: UnitOfWorkFactory) -> None:
    await _seed(uow_factory, 1, 10)
    await _seed(uow_factory, 2, 5)
    async with uow_factory() as uow:
        batch = [charge("b1", 1, 4), charge("b2", 2, 5), charge("b3", 1, 6)]
        assert await uow.ledger.debit_many(batch) == []
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.ledger.balance(1), await uow.ledger.balance(2)) == (0, 0)
        assert {t.transaction_id for _, t in await uow.ledger.transactions(1, 10, None)} == {
            "seed-1", "b1", "b3"
        }


async def test_debit_many_refuses_in_order_and_then_applies_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _seed(uow_factory, 1, 10)
    await _seed(uow_factory, 2, 100)
    batch = [
        charge("b1", 1, 6),
        charge("b2", 1, 6),  # 4 left: refused
        charge("b3", 2, 1),
        charge("b4", 1, 4),  # fits what b1 left, since b2 is not taken
        charge("b5", 99, 1),  # no such account
    ]
    async with uow_factory() as uow:
        assert await uow.ledger.debit_many(batch) == [1, 4]
        await uow.commit()  # even committed, a refusal leaves nothing
    async with uow_factory() as uow:
        assert (await uow.ledger.balance(1), await uow.ledger.balance(2)) == (10, 100)
        assert await uow.ledger.balance(99) is None
        assert len(await uow.ledger.transactions(1, 10, None)) == 1
    async with uow_factory() as uow:  # without the refused ones, the rest goes through
        assert await uow.ledger.debit_many([batch[0], batch[2], batch[3]]) == []
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.ledger.balance(1), await uow.ledger.balance(2)) == (0, 99)


async def test_debit_many_applies_an_id_at_most_once(uow_factory: UnitOfWorkFactory) -> None:
    await _seed(uow_factory, 1, 10)
    async with uow_factory() as uow:
        await uow.ledger.apply(charge("c1", 1, 1))
        await uow.commit()
    with contextlib.suppress(DuplicateTransaction):
        async with uow_factory() as uow:
            await uow.ledger.debit_many([charge("c2", 1, 1), charge("c1", 1, 1)])
            raise AssertionError("a charge applied before must be refused")
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) == 9


async def test_a_refused_group_rolls_back_its_whole_unit_of_work(
    uow_factory: UnitOfWorkFactory,
) -> None:
    # The accept path writes a group's rows, then debits: a refusal takes the rows
    # too (the port's promise), and the group's next try starts from nothing.
    await _seed(uow_factory, 1, 10)
    await _seed(uow_factory, 2, 10)
    async with uow_factory() as uow:
        await uow.ledger.apply(topup("written-before", 2, 5))
        assert await uow.ledger.debit_many([charge("d1", 2, 1), charge("d2", 1, 11)]) == [1]
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.ledger.balance(1), await uow.ledger.balance(2)) == (10, 10)
        assert [t.transaction_id for _, t in await uow.ledger.transactions(2, 10, None)] == [
            "seed-2"]


async def test_a_duplicate_in_a_group_rolls_back_its_whole_unit_of_work(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _seed(uow_factory, 1, 10)
    with contextlib.suppress(DuplicateTransaction):
        async with uow_factory() as uow:
            await uow.ledger.apply(topup("written-before", 1, 5))
            await uow.ledger.debit_many([charge("d1", 1, 1), charge("seed-1", 1, 1)])
            raise AssertionError("an id applied before must be refused")
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) == 10


async def test_debit_many_counts_every_charge_of_an_account_together(
    uow_factory: UnitOfWorkFactory,
) -> None:
    # Each charge fits the balance alone; together they do not: the account's
    # whole move is what is guarded, then the charges are refused in order.
    await _seed(uow_factory, 1, 10)
    async with uow_factory() as uow:
        assert await uow.ledger.debit_many(
            [charge("a", 1, 6), charge("b", 1, 6), charge("c", 1, 4)]) == [1]
    async with uow_factory() as uow:
        assert await uow.ledger.debit_many([charge("a", 1, 6), charge("c", 1, 4)]) == []
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) == 0


def refund(tx_id: str, customer_id: int, amount: int) -> Transaction:
    return Transaction(tx_id, customer_id, amount, TransactionType.REFUND, f"refund {tx_id}", T0)


async def test_credit_many_applies_every_credit_in_one_go(uow_factory: UnitOfWorkFactory) -> None:
    await _seed(uow_factory, 2, 10)
    await _seed(uow_factory, 1, 10)
    async with uow_factory() as uow:
        await uow.ledger.credit_many([
            refund("r1", 2, 3), refund("r2", 1, 1), refund("r3", 2, 4), topup("new", 9, 7),
        ])
        await uow.commit()
    async with uow_factory() as uow:
        balances = [await uow.ledger.balance(user) for user in (1, 2, 9)]
        assert balances == [11, 17, 7]  # an account that did not exist is created
        for user, balance in zip((1, 2, 9), balances, strict=True):
            rows = await uow.ledger.transactions(user, 10, None)
            assert balance == sum(t.amount for _, t in rows)
        assert {t.transaction_id for _, t in await uow.ledger.transactions(2, 10, None)} == {
            "seed-2", "r1", "r3"
        }
        await uow.ledger.credit_many([])  # nothing to do


async def test_credit_many_applies_an_id_at_most_once_and_then_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _seed(uow_factory, 1, 10)
    async with uow_factory() as uow:
        await uow.ledger.apply(refund("r1", 1, 1))
        await uow.commit()
    for batch in (
        [refund("r2", 1, 5), refund("r1", 1, 1), refund("r3", 2, 5)],  # applied before
        [refund("r4", 1, 5), refund("r5", 2, 5), refund("r4", 1, 5)],  # given twice
    ):
        async with uow_factory() as uow:
            with pytest.raises(DuplicateTransaction):
                await uow.ledger.credit_many(batch)
            await uow.commit()  # even committed, the refusal left nothing
    async with uow_factory() as uow:
        assert (await uow.ledger.balance(1), await uow.ledger.balance(2)) == (11, None)
        assert len(await uow.ledger.transactions(1, 10, None)) == 2


async def test_credit_many_takes_only_credits(uow_factory: UnitOfWorkFactory) -> None:
    await _seed(uow_factory, 1, 10)
    async with uow_factory() as uow:
        with pytest.raises(ValueError):
            await uow.ledger.credit_many([refund("r1", 1, 1), charge("c1", 1, 1)])
        assert await uow.ledger.balance(1) == 10
