"""Issuing, listing and revoking API keys (the `smsgw keys` commands and the
admin routes)."""

from __future__ import annotations

from dataclasses import dataclass

from smsgw_core.customers import Customer
from smsgw_core.errors import InvalidRequest
from smsgw_core.keys import MAX_KEY_NAME, ApiKey, IssuedKey, Tokens, issue
from smsgw_core.pagination import MAX_POSITION
from smsgw_core.ports import Clock, UnitOfWork, UnitOfWorkFactory
from smsgw_core.transactions import in_transaction


@dataclass(frozen=True, slots=True)
class NewKey:
    """What a key is to be; refused (InvalidRequest) when it cannot be."""

    customer_id: int | None  # None: an admin key
    name: str = ""

    def __post_init__(self) -> None:
        if self.customer_id is not None and not 0 < self.customer_id <= MAX_POSITION:
            raise InvalidRequest("customer", f"must be an integer from 1 to {MAX_POSITION}")
        if len(self.name) > MAX_KEY_NAME:
            raise InvalidRequest("name", f"at most {MAX_KEY_NAME} characters")


class Keys:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, tokens: Tokens) -> None:
        self.uow = uow
        self.clock = clock
        self.tokens = tokens

    async def create(self, command: NewKey) -> IssuedKey:
        """A new key; its customer is created first when it does not exist."""
        now = self.clock.now()
        issued = issue(self.tokens, command.customer_id, command.name, now)

        async def store(uow: UnitOfWork) -> IssuedKey:
            if command.customer_id is not None:
                await uow.customers.add(Customer(command.customer_id, "", now))
            await uow.keys.add(issued.record)
            await uow.commit()
            return issued

        return await in_transaction(self.uow, store)

    async def listed(self, customer_id: int | None = None) -> list[ApiKey]:
        async def read(uow: UnitOfWork) -> list[ApiKey]:
            return await uow.keys.listed(customer_id)

        return await in_transaction(self.uow, read)

    async def revoke(self, key_id: str) -> bool:
        """False when there is no such key or it was revoked before."""
        now = self.clock.now()

        async def store(uow: UnitOfWork) -> bool:
            revoked = await uow.keys.revoke(key_id, now)
            await uow.commit()
            return revoked

        return await in_transaction(self.uow, store)
