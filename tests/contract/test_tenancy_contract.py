"""CustomerRepository and KeyRepository: what every backend keeps of customers and keys."""

from __future__ import annotations

from contract_helpers import T0, at, topup

from smsgw_core.customers import Customer
from smsgw_core.keys import ApiKey
from smsgw_core.ports import UnitOfWorkFactory

HASH = "0123456789abcdef" * 4


def key(key_id: str, customer_id: int | None, name: str = "", when: float = 0) -> ApiKey:
    return ApiKey(key_id, customer_id, name, HASH, at(when))


async def test_a_customer_is_added_once_and_read_back(uow_factory: UnitOfWorkFactory) -> None:
    big = 2**63 - 1
    async with uow_factory() as uow:
        assert await uow.customers.get(7) is None
        assert await uow.customers.add(Customer(7, "Acme ✓", T0, 200))
        assert await uow.customers.add(Customer(big, "", T0))
        # A second add of the id keeps the first, and the transaction goes on.
        assert not await uow.customers.add(Customer(7, "other", at(5)))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.customers.get(7) == Customer(7, "Acme ✓", T0, 200)
        assert await uow.customers.get(big) == Customer(big, "", T0, None)


async def test_a_rolled_back_customer_is_not_kept(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.customers.add(Customer(8, "x", T0))
    async with uow_factory() as uow:
        assert await uow.customers.get(8) is None


async def test_keys_are_read_back_listed_per_customer_and_oldest_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.keys.add(key("00000000000000b2", 2, "second", when=2.5))
        await uow.keys.add(key("00000000000000a1", 1, "first", when=1.25))
        await uow.keys.add(key("00000000000000ad", None, "admin", when=3))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.keys.get("00000000000000a1") == key("00000000000000a1", 1, "first",
                                                             when=1.25)
        assert await uow.keys.get("0000000000000000") is None
        assert [k.key_id for k in await uow.keys.listed(None)] == [
            "00000000000000a1", "00000000000000b2", "00000000000000ad"]
        assert [k.key_id for k in await uow.keys.listed(2)] == ["00000000000000b2"]
        assert await uow.keys.listed(3) == []
        admin = await uow.keys.get("00000000000000ad")
    assert admin is not None and admin.is_admin and not admin.is_revoked


async def test_a_key_is_revoked_once(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.keys.add(key("00000000000000c3", 3))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.keys.revoke("00000000000000c3", at(10.5))
        assert not await uow.keys.revoke("00000000000000c3", at(11))
        assert not await uow.keys.revoke("ffffffffffffffff", at(11))
        await uow.commit()
    async with uow_factory() as uow:
        revoked = await uow.keys.get("00000000000000c3")
    assert revoked is not None and revoked.revoked_at == at(10.5) and revoked.is_revoked


async def test_a_free_id_is_above_every_customer_and_account_else_the_lowest_gap(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        assert await uow.customers.free_id(10) == 1
        await uow.customers.add(Customer(3, "", T0))
        await uow.ledger.apply(topup("t5", 5, 1))
        assert await uow.customers.free_id(10) == 6
        await uow.ledger.apply(topup("t10", 10, 1))  # the top is taken
        assert await uow.customers.free_id(10) == 1
        for taken in (1, 2):
            await uow.customers.add(Customer(taken, "", T0))
        assert await uow.customers.free_id(10) == 4
        for taken in (4, 6, 7, 8, 9):
            await uow.ledger.apply(topup(f"t{taken}", taken, 1))
        assert await uow.customers.free_id(10) is None


async def test_a_limit_is_set_and_cleared(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.customers.add(Customer(9, "n", T0))
        assert await uow.customers.set_limit(9, 50)
        assert not await uow.customers.set_limit(10, 50)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.customers.get(9) == Customer(9, "n", T0, 50)
        assert await uow.customers.set_limit(9, None)
        assert await uow.customers.get(9) == Customer(9, "n", T0, None)


async def test_a_key_keeps_its_latest_use(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.keys.add(key("00000000000000c1", 1))
        await uow.keys.add(key("00000000000000c2", 1))
        await uow.commit()
    async with uow_factory() as uow:
        await uow.keys.touch({"00000000000000c1": at(10), "00000000000000c2": at(20),
                              "00000000000000ff": at(30)})  # no such key: nothing
        await uow.commit()
    async with uow_factory() as uow:
        # An older use, written late (another process's flush), does not go back in time.
        await uow.keys.touch({"00000000000000c1": at(15), "00000000000000c2": at(5)})
        await uow.commit()
    async with uow_factory() as uow:
        used = {k.key_id: k.last_used_at for k in await uow.keys.listed(1)}
        assert used == {"00000000000000c1": at(15), "00000000000000c2": at(20)}
        assert await uow.keys.get("00000000000000ff") is None


async def test_the_customers_with_a_limit_of_their_own(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        for customer, rate in ((1, 200), (2, None), (3, 5)):
            await uow.customers.add(Customer(customer, "", T0, rate))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.customers.limits() == {1: 200, 3: 5}
        await uow.customers.set_limit(1, None)
        assert await uow.customers.limits() == {3: 5}
