"""Who a request is from: its Bearer key, checked without a database round trip
per request.

A key's record is read once and then served from memory for `ttl_s` seconds
(1 s by default), so a revocation is seen by every process within that time
(plus one request's own duration). Unknown key ids are remembered the same
way, so a client hammering with made-up keys costs one lookup per id and TTL;
the memory is bounded (the least recently fetched entries go first).
Concurrent requests with a key not in memory share one lookup.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from smsgw_core.errors import Unauthenticated
from smsgw_core.keys import ApiKey, parse, proves
from smsgw_core.ports import UnitOfWork, UnitOfWorkFactory
from smsgw_core.transactions import in_transaction

SCHEME = "bearer"
DEFAULT_TTL_S = 1.0
DEFAULT_CACHE_SIZE = 10_000


class Authenticator:
    def __init__(self, uow: UnitOfWorkFactory, ticks: Callable[[], float],
                 ttl_s: float = DEFAULT_TTL_S, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.uow = uow
        self.ticks = ticks  # monotonic seconds (time.monotonic in production)
        self.ttl_s = ttl_s
        self.cache_size = cache_size
        self._records: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[ApiKey | None]] = {}

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
        record = await self._record(presented.key_id)
        if record is None:
            raise Unauthenticated(f"unknown key {presented.key_id}")
        if not proves(record, presented):
            raise Unauthenticated(f"wrong secret for key {presented.key_id}")
        if record.is_revoked:
            raise Unauthenticated(f"revoked key {presented.key_id}")
        return record

    async def _record(self, key_id: str) -> ApiKey | None:
        now = self.ticks()
        cached = self._records.get(key_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        loading = self._loading.get(key_id)
        if loading is None:
            # A task of its own: a requester that leaves does not cancel the others' lookup.
            loading = asyncio.ensure_future(self._load(key_id, now))
            loading.add_done_callback(_retrieve)
            self._loading[key_id] = loading
        return await asyncio.shield(loading)

    async def _load(self, key_id: str, now: float) -> ApiKey | None:
        try:
            record = await in_transaction(self.uow, _reader(key_id))
        finally:
            del self._loading[key_id]
        self._records[key_id] = (now, record)
        self._records.move_to_end(key_id)
        while len(self._records) > self.cache_size:
            self._records.popitem(last=False)
        return record


def _retrieve(task: asyncio.Future[ApiKey | None]) -> None:
    """Mark a failed lookup's error as seen: every requester may have left."""
    if not task.cancelled():
        task.exception()


def _reader(key_id: str) -> Callable[[UnitOfWork], Awaitable[ApiKey | None]]:
    async def read(uow: UnitOfWork) -> ApiKey | None:
        return await uow.keys.get(key_id)

    return read
