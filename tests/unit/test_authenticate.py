"""The Authenticator: a Bearer key proven from memory, revocations seen within its TTL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from smsgw_core.errors import Unauthenticated
from smsgw_core.ports import UnitOfWork
from smsgw_core.services.authenticate import Authenticator
from smsgw_core.services.keys import Keys, NewKey
from smsgw_core.system import SystemTokens
from smsgw_core.testing import FakeClock, FakeTicks, InMemoryDatabase


class Counted:
    """The in-memory database, counting the units of work (the round trips) opened."""

    def __init__(self) -> None:
        self.db = InMemoryDatabase()
        self.opened = 0

    def uow(self) -> UnitOfWork:
        self.opened += 1
        return self.db.uow()


@pytest.fixture
def store() -> Counted:
    return Counted()


async def make_key(store: Counted, customer: int | None = 7) -> tuple[Keys, str, str]:
    keys = Keys(store.db.uow, FakeClock(), SystemTokens())
    issued = await keys.create(NewKey(customer))
    return keys, issued.key, issued.record.key_id


async def test_a_key_is_read_once_per_ttl(store: Counted) -> None:
    _, key, key_id = await make_key(store)
    ticks = FakeTicks()
    auth = Authenticator(store.uow, ticks, FakeClock(), ttl_s=1.0)
    for _ in range(50):
        assert (await auth.authenticate(f"Bearer {key}")).key_id == key_id
    assert store.opened == 1
    ticks.advance(1.0)
    await auth.authenticate(f"bearer  {key} ")  # the scheme in any case, spaces around
    assert store.opened == 2


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer smsgw_x_y", "Token smsgw_" + "a" * 60,
])
async def test_no_key_or_a_malformed_one_is_refused_without_a_lookup(
    store: Counted, header: str | None
) -> None:
    with pytest.raises(Unauthenticated):
        await Authenticator(store.uow, FakeTicks(), FakeClock()).authenticate(header)
    assert store.opened == 0


async def test_an_unknown_key_is_refused_and_remembered(store: Counted) -> None:
    _, key, key_id = await make_key(store)
    unknown = key.replace(key_id, "0" * 16)
    auth = Authenticator(store.uow, FakeTicks(), FakeClock())
    for _ in range(20):
        with pytest.raises(Unauthenticated) as refused:
            await auth.authenticate(f"Bearer {unknown}")
    assert "unknown key" in refused.value.reason and store.opened == 1


async def test_another_secret_under_a_real_key_id_is_refused(store: Counted) -> None:
    _, key, _ = await make_key(store)
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthenticated) as refused:
        await Authenticator(store.uow, FakeTicks(), FakeClock()).authenticate(f"Bearer {forged}")
    assert "wrong secret" in refused.value.reason


async def test_a_revocation_is_seen_once_the_ttl_has_passed(store: Counted) -> None:
    keys, key, key_id = await make_key(store)
    ticks = FakeTicks()
    auth = Authenticator(store.uow, ticks, FakeClock(), ttl_s=1.0)
    await auth.authenticate(f"Bearer {key}")
    assert await keys.revoke(key_id)
    ticks.advance(0.9)
    await auth.authenticate(f"Bearer {key}")  # still in memory
    ticks.advance(0.1)
    with pytest.raises(Unauthenticated) as refused:
        await auth.authenticate(f"Bearer {key}")
    assert "revoked" in refused.value.reason


async def test_concurrent_requests_share_one_lookup(store: Counted) -> None:
    _, key, key_id = await make_key(store)
    auth = Authenticator(store.uow, FakeTicks(), FakeClock())
    found = await asyncio.gather(*(auth.authenticate(f"Bearer {key}") for _ in range(25)))
    assert {k.key_id for k in found} == {key_id} and store.opened == 1


async def test_the_memory_is_bounded(store: Counted) -> None:
    made = [await make_key(store, customer) for customer in (1, 2, 3)]
    auth = Authenticator(store.uow, FakeTicks(), FakeClock(), cache_size=2)
    for _, key, _ in made:
        await auth.authenticate(f"Bearer {key}")
    await auth.authenticate(f"Bearer {made[2][1]}")  # still held
    assert store.opened == 3
    await auth.authenticate(f"Bearer {made[0][1]}")  # the oldest went
    assert store.opened == 4


class Failing:
    """The in-memory database, refusing to open while `down`."""

    def __init__(self, db: InMemoryDatabase) -> None:
        self.db, self.down = db, False

    def uow(self) -> UnitOfWork:
        if self.down:
            raise ConnectionError("database down")
        return self.db.uow()


async def test_last_uses_are_written_together_and_kept_through_a_failed_write(
    store: Counted,
) -> None:
    keys, key, key_id = await make_key(store)
    _, other, other_id = await make_key(store, customer=8)
    clock, db = FakeClock(), Failing(store.db)
    auth = Authenticator(db.uow, FakeTicks(), clock)
    assert await auth.flush_usage() == 0
    await auth.authenticate(f"Bearer {key}")
    clock.advance(timedelta(seconds=30))
    await auth.authenticate(f"Bearer {key}")
    await auth.authenticate(f"Bearer {other}")
    used_at = clock.now()
    db.down = True
    with pytest.raises(ConnectionError):
        await auth.flush_usage()
    db.down = False
    assert await auth.flush_usage() == 2
    assert {k.key_id: k.last_used_at for k in await keys.listed(None)} == {
        key_id: used_at, other_id: used_at}
    assert await auth.flush_usage() == 0  # nothing new since
