"""Customers as an admin manages them: create, look at, and set a send limit."""

from __future__ import annotations

from dataclasses import dataclass

from smsgw_core.customers import MAX_CUSTOMER_NAME, Customer
from smsgw_core.errors import InvalidRequest, NotFound
from smsgw_core.pagination import MAX_POSITION
from smsgw_core.ports import Clock, UnitOfWork, UnitOfWorkFactory
from smsgw_core.send_limits import MAX_RATE
from smsgw_core.transactions import in_transaction

__all__ = ["MAX_RATE", "CustomerView", "Customers", "check_name", "check_rate"]

_ID_ATTEMPTS = 5  # concurrent creations may take the same next id: each tries again


@dataclass(frozen=True, slots=True)
class CustomerView:
    customer: Customer
    balance: int


def check_name(name: str) -> None:
    if len(name) > MAX_CUSTOMER_NAME:
        raise InvalidRequest("name", f"at most {MAX_CUSTOMER_NAME} characters")


def check_rate(rate: int | None) -> None:
    if rate is not None and not 1 <= rate <= MAX_RATE:
        raise InvalidRequest("max_recipients_per_s", f"must be 1-{MAX_RATE}, or null")


class Customers:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    async def create(self, name: str) -> Customer:
        """A customer with a free id: above every customer's and account's while
        there is one (ids are BIGINT: effectively always)."""
        check_name(name)

        async def store(uow: UnitOfWork) -> Customer | None:
            free = await uow.customers.free_id(MAX_POSITION)
            if free is None:
                raise InvalidRequest("id", "no customer id is left")
            customer = Customer(free, name, self.clock.now())
            if not await uow.customers.add(customer):
                return None
            await uow.commit()
            return customer

        for _ in range(_ID_ATTEMPTS):
            if (made := await in_transaction(self.uow, store)) is not None:
                return made
        raise InvalidRequest("id", "concurrent creations took every id tried; try again")

    async def show(self, customer_id: int) -> CustomerView:
        """A customer, or an account of the seed routes (named "" until named)."""
        async def read(uow: UnitOfWork) -> CustomerView:
            return await self._view(uow, customer_id)

        return await in_transaction(self.uow, read)

    async def ensure(self, customer_id: int) -> None:
        """NotFound unless the customer, or an account of that id, exists; an
        account gets its customer row (so that it can be named and limited)."""
        async def store(uow: UnitOfWork) -> None:
            await self._ensure(uow, customer_id)
            await uow.commit()

        await in_transaction(self.uow, store)

    async def set_limit(self, customer_id: int, rate: int | None) -> CustomerView:
        check_rate(rate)

        async def store(uow: UnitOfWork) -> CustomerView:
            await self._ensure(uow, customer_id)
            await uow.customers.set_limit(customer_id, rate)
            view = await self._view(uow, customer_id)
            await uow.commit()
            return view

        return await in_transaction(self.uow, store)

    async def _view(self, uow: UnitOfWork, customer_id: int) -> CustomerView:
        customer = await uow.customers.get(customer_id)
        balance = await uow.ledger.balance(customer_id)
        if customer is None and balance is None:
            raise NotFound(f"no customer {customer_id}")
        if customer is None:
            customer = Customer(customer_id, "", self.clock.now())
        return CustomerView(customer, balance or 0)

    async def _ensure(self, uow: UnitOfWork, customer_id: int) -> None:
        if await uow.customers.get(customer_id) is not None:
            return
        if await uow.ledger.balance(customer_id) is None:
            raise NotFound(f"no customer {customer_id}")
        await uow.customers.add(Customer(customer_id, "", self.clock.now()))
