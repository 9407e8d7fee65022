"""UnitOfWork: all or nothing, visible to others only after commit."""

from __future__ import annotations

import pytest
from contract_helpers import T0, charge, delivery, messages, topup

from smsgw_core.errors import InsufficientBalance
from smsgw_core.ports import HistoryFilter, StoredResponse, UnitOfWork, UnitOfWorkFactory


async def _write_everything(uow: UnitOfWork, sms: str) -> None:
    await uow.messages.add(messages(sms, 1, "+989120000001"))
    await uow.outbox.add([delivery(sms)], T0)
    await uow.idempotency.add(1, sms, StoredResponse("h" * 64, {"sms_identifier": sms}), T0)
    await uow.ledger.apply(topup(f"t-{sms}", 1, 10))


async def _visible(uow_factory: UnitOfWorkFactory, sms: str) -> dict[str, bool]:
    async with uow_factory() as uow:
        history = await uow.messages.history(HistoryFilter(1, sms_identifier=sms), 10, None)
        claimed = await uow.outbox.claim_due(T0, 100, T0)
        transactions = await uow.ledger.transactions(1, 100, None)
        return {
            "message": bool(history),
            "event": any(e.aggregate_id == sms for e in claimed),
            "key": await uow.idempotency.get(1, sms) is not None,
            "transaction": any(t.transaction_id == f"t-{sms}" for _, t in transactions),
        }


async def test_without_commit_nothing_is_written(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await _write_everything(uow, "s1")
    assert await _visible(uow_factory, "s1") == dict.fromkeys(
        ["message", "event", "key", "transaction"], False
    )
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) is None


async def test_commit_makes_everything_visible(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await _write_everything(uow, "s1")
        await uow.commit()
    assert await _visible(uow_factory, "s1") == dict.fromkeys(
        ["message", "event", "key", "transaction"], True
    )


async def test_an_error_rolls_the_whole_unit_back(uow_factory: UnitOfWorkFactory) -> None:
    with pytest.raises(InsufficientBalance):
        async with uow_factory() as uow:
            await _write_everything(uow, "s1")
            await uow.ledger.apply(charge("c1", 1, 11))
            await uow.commit()
    assert not any((await _visible(uow_factory, "s1")).values())


async def test_rollback_discards_and_the_unit_goes_on(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await _write_everything(uow, "s1")
        await uow.rollback()
        await _write_everything(uow, "s2")
        await uow.commit()
        await uow.ledger.apply(topup("after-commit", 1, 5))
        await uow.commit()
    assert not any((await _visible(uow_factory, "s1")).values())
    assert all((await _visible(uow_factory, "s2")).values())
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) == 15


async def test_repositories_need_an_open_unit(uow_factory: UnitOfWorkFactory) -> None:
    uow = uow_factory()
    with pytest.raises(RuntimeError):
        await uow.ledger.balance(1)
    async with uow:
        assert await uow.ledger.balance(1) is None
    with pytest.raises(RuntimeError):
        await uow.ledger.balance(1)
