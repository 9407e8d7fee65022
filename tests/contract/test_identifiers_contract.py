"""Identifiers compare byte for byte on every backend: no case folding, no padding.

On MariaDB the tables' default collation (utf8mb4_general_ci) made `Case-1` and
`case-1` one Idempotency-Key, and one transaction id; migration 0004 fixed it.
"""

from __future__ import annotations

from contract_helpers import T0, claim, delivery, messages, topup

from smsgw_core.ports import HistoryFilter, StoredResponse, UnitOfWorkFactory

# Each differs from the first only in case or by a trailing space.
KEYS = ["Case-1", "case-1", "CASE-1", "Case-1 "]


async def test_idempotency_keys(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        for n, key in enumerate(KEYS):
            await uow.idempotency.add(1, key, StoredResponse(str(n) * 64, {"n": n}), T0)
        await uow.commit()
    async with uow_factory() as uow:
        for n, key in enumerate(KEYS):
            assert await uow.idempotency.get(1, key) == StoredResponse(str(n) * 64, {"n": n})
        assert await uow.idempotency.get(1, "cASE-1") is None


async def test_transaction_ids(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        for key in KEYS:
            await uow.ledger.apply(topup(f"topup:1:{key}", 1, 1))
        await uow.ledger.credit_many([topup(f"refund:{key}", 2, 1) for key in KEYS])
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ledger.balance(1) == await uow.ledger.balance(2) == len(KEYS)
        stored = {t.transaction_id for _, t in await uow.ledger.transactions(1, 10, None)}
    assert stored == {f"topup:1:{key}" for key in KEYS}


async def test_sms_identifiers_and_recipients(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        for sms in ("Sms-1", "sms-1", "Sms-1 "):
            await uow.messages.add(messages(sms, 1, "+989120000001", "+989120000001 "))
            await uow.outbox.add([delivery(sms)], T0)
        await uow.commit()
    async with uow_factory() as uow:
        for sms in ("Sms-1", "sms-1", "Sms-1 "):
            rows = await uow.messages.history(HistoryFilter(1, sms_identifier=sms), 10, None)
            assert sorted((m.sms_identifier, m.recipient) for _, m in rows) == [
                (sms, "+989120000001"), (sms, "+989120000001 ")
            ]
        claimed = await claim(uow.messages, "sms-1", T0)
        assert sorted(claimed) == ["+989120000001", "+989120000001 "]
        events = await uow.outbox.claim_due(T0, 10, T0)
    assert sorted(e.aggregate_id for e in events) == ["Sms-1", "Sms-1 ", "sms-1"]
