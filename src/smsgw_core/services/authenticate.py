"""Who a request is from: its Bearer key, checked without a database round trip
per request.

A key's record (or its absence) is read once and then served from memory
for `ttl_s` seconds (1 s by default; see RecentlyRead), so a revocation is
seen by every process within that time, and a client hammering with made-up
keys costs one lookup per id and TTL.

Each key's last use is kept in memory and written in one statement for all
keys by `flush_usage` (the API's process calls it every few seconds and at
shutdown): `smsgw keys list` shows it, never one write per request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from smsgw_core.errors import Unauthenticated
from smsgw_core.keys import ApiKey, parse, proves
from smsgw_core.ports import Clock, UnitOfWork, UnitOfWorkFactory
from smsgw_core.services.recently_read import DEFAULT_SIZE, DEFAULT_TTL_S, RecentlyRead
from smsgw_core.transactions import in_transaction

SCHEME = "bearer"


class Authenticator:
    def __init__(self, uow: UnitOfWorkFactory, ticks: Callable[[], float], clock: Clock,
                 ttl_s: float = DEFAULT_TTL_S, cache_size: int = DEFAULT_SIZE) -> None:
        self.uow = uow
        self.clock = clock
        self._records: RecentlyRead[str, ApiKey | None] = RecentlyRead(
            self._read, ticks, ttl_s, cache_size)
        self._used: dict[str, datetime] = {}  # key id -> last use, not yet written

    async def authenticate(self, authorization: str | None) -> ApiKey:
        """The key an Authorization header value proves; Unauthenticated otherwise."""
        if not authorization:
            raise Unauthenticated("no Authorization header")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != SCHEME:
            raise Unauthenticated("not a Bearer credential")
        presented = parse(credentials.strip())
        if presented is None:
            raise Unauthenticated("malformed key")
        record = await self._records.get(presented.key_id)
        if record is None:
            raise Unauthenticated(f"unknown key {presented.key_id}")
        if not proves(record, presented):
            raise Unauthenticated(f"wrong secret for key {presented.key_id}")
        if record.is_revoked:
            raise Unauthenticated(f"revoked key {presented.key_id}")
        self._used[record.key_id] = self.clock.now()
        return record

    async def flush_usage(self) -> int:
        """Write every key's last use since the previous flush; how many keys.

        A failed write keeps the uses for the next flush (a newer use wins)."""
        used, self._used = self._used, {}
        if not used:
            return 0

        async def write(uow: UnitOfWork) -> None:
            await uow.keys.touch(used)
            await uow.commit()

        try:
            await in_transaction(self.uow, write)
        except BaseException:
            for key_id, at in used.items():
                self._used.setdefault(key_id, at)
            raise
        return len(used)

    async def _read(self, key_id: str) -> ApiKey | None:
        async def read(uow: UnitOfWork) -> ApiKey | None:
            return await uow.keys.get(key_id)

        return await in_transaction(self.uow, read)
