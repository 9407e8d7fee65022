"""IdempotencyRepository: one stored response per (customer, key)."""

from __future__ import annotations

import pytest
from contract_helpers import T0

from smsgw_core.errors import DuplicateIdempotencyKey
from smsgw_core.ports import StoredResponse, UnitOfWorkFactory

STORED = StoredResponse(
    "a" * 64, {"sms_identifier": "s1", "cost": 3, "nested": {"text": "سلام ✓", "ok": True}}
)


async def test_a_stored_response_is_read_back(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        assert await uow.idempotency.get(1, "key-1") is None
        await uow.idempotency.add(1, "key-1", STORED, T0)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.idempotency.get(1, "key-1") == STORED
        assert await uow.idempotency.get(1, "key-2") is None


async def test_keys_are_per_customer(uow_factory: UnitOfWorkFactory) -> None:
    other = StoredResponse("b" * 64, {"sms_identifier": "s2"})
    async with uow_factory() as uow:
        await uow.idempotency.add(1, "key", STORED, T0)
        await uow.idempotency.add(2, "key", other, T0)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.idempotency.get(2, "key") == other
        assert await uow.idempotency.get(1, "key") == STORED


async def test_a_key_is_stored_once(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.idempotency.add(1, "k" * 100, STORED, T0)
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(DuplicateIdempotencyKey):
            await uow.idempotency.add(1, "k" * 100, StoredResponse("c" * 64, {}), T0)
        assert await uow.idempotency.get(1, "k" * 100) == STORED
