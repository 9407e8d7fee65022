"""In-memory customers and API keys, keeping the SQL repositories' promises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from smsgw_core.customers import Customer
from smsgw_core.keys import ApiKey
from smsgw_core.testing.repositories import _Repo


class InMemoryCustomers(_Repo):
    async def get(self, customer_id: int) -> Customer | None:
        return self.s.customers.get(customer_id)

    async def add(self, customer: Customer) -> bool:
        if customer.id in self.s.customers:
            return False
        self.s.customers[customer.id] = customer
        return True

    async def free_id(self, highest: int) -> int | None:
        taken = {*self.s.customers, *self.s.balances}
        if (above := max(taken, default=0) + 1) <= highest:
            return above
        return next((c + 1 for c in sorted({0, *taken}) if c < highest and c + 1 not in taken),
                    None)

    async def limits(self) -> dict[int, int]:
        return {c.id: c.max_recipients_per_s for c in self.s.customers.values()
                if c.max_recipients_per_s is not None}

    async def set_limit(self, customer_id: int, max_recipients_per_s: int | None) -> bool:
        customer = self.s.customers.get(customer_id)
        if customer is None:
            return False
        self.s.customers[customer_id] = replace(
            customer, max_recipients_per_s=max_recipients_per_s)
        return True


class InMemoryKeys(_Repo):
    async def add(self, key: ApiKey) -> None:
        if key.key_id in self.s.keys:
            raise ValueError(f"key id {key.key_id} exists")  # the primary key, in SQL
        self.s.keys[key.key_id] = key

    async def get(self, key_id: str) -> ApiKey | None:
        return self.s.keys.get(key_id)

    async def listed(self, customer_id: int | None) -> list[ApiKey]:
        return sorted((k for k in self.s.keys.values()
                       if customer_id is None or k.customer_id == customer_id),
                      key=lambda k: (k.created_at, k.key_id))

    async def revoke(self, key_id: str, at: datetime) -> bool:
        key = self.s.keys.get(key_id)
        if key is None or key.is_revoked:
            return False
        self.s.keys[key_id] = replace(key, revoked_at=at)
        return True

    async def touch(self, used: Mapping[str, datetime]) -> None:
        for key_id, at in used.items():
            key = self.s.keys.get(key_id)
            if key is not None and (key.last_used_at is None or key.last_used_at < at):
                self.s.keys[key_id] = replace(key, last_used_at=at)
