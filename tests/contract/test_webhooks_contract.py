"""WebhookRepository on every storage: memory (the reference), SQLite and MariaDB.

Endpoints (subscriptions, round trip, replace, several read at once, disable,
delete), the events' life (add, due, claim and claim_many under a lease, finish,
replay, the list and its cursor, the oldest pending), claims racing from two
connections, a property holding SQLite and MariaDB to the in-memory store over
any sequence of operations, and the events settle() writes in the transaction
of the status moves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from contract_helpers import T0, at
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from receipt_helpers import OP, Gateway, done, receipt

from smsgw_adapters.sql.schema import webhook_attempts, webhook_endpoints, webhook_events
from smsgw_adapters.sql.uow import SqlUnitOfWork
from smsgw_core.messages import SmsStatus
from smsgw_core.ports import HistoryFilter, UnitOfWork, UnitOfWorkFactory
from smsgw_core.receipts import ReceiptPolicy, Reported
from smsgw_core.services.settle import Settlement, Verdict, settle
from smsgw_core.testing import InMemoryDatabase
from smsgw_core.testing.uow import InMemoryUnitOfWork
from smsgw_core.transactions import in_transaction
from smsgw_core.validity import FailureReason
from smsgw_core.webhooks import (
    MAX_URL_LENGTH,
    SUBSCRIBABLE,
    Attempt,
    Endpoint,
    EventOutcome,
    EventState,
    EventType,
    WebhookEvent,
    event_id,
    payload,
)

PENDING, DELIVERED, DEAD = EventState.PENDING, EventState.DELIVERED, EventState.DEAD
SENT, FAILED = EventType.SENT, EventType.FAILED


# --- builders ------------------------------------------------------------------------


def ev(name: str, customer: int, created: datetime, due: datetime | None = None,
       kind: EventType = SENT) -> WebhookEvent:
    """An event as the core writes it; without `due`, next_at is left to the store
    (due when written)."""
    body = payload(kind, created, {"message_id": name, "text": "سلام ✓"})
    return WebhookEvent(f"evt_{name}", customer, kind, body, created, next_at=due)


def endpoint(customer: int, *events: EventType, disabled_at: datetime | None = None) -> Endpoint:
    return Endpoint(customer, f"https://hooks.example.com/c{customer}",
                    frozenset(events or SUBSCRIBABLE), f"v1.k1.sealed-{customer}", T0,
                    disabled_at=disabled_at, disabled_reason="gone" if disabled_at else "")


def ok(at_: datetime, seconds: float = 0.25) -> Attempt:
    return Attempt(at_, 200, "", '{"ok":true}', seconds)


def failing(at_: datetime, code: int | None = 500) -> Attempt:
    return Attempt(at_, code, "" if code else "timed out after 15 s",
                   "oops" if code else "", 15.0 if code is None else 0.5)


def delivered(e: WebhookEvent | str, attempt: Attempt) -> EventOutcome:
    return EventOutcome(_id(e), attempt, DELIVERED)


def dead(e: WebhookEvent | str, attempt: Attempt) -> EventOutcome:
    return EventOutcome(_id(e), attempt, DEAD)


def again(e: WebhookEvent | str, attempt: Attempt, next_at: datetime) -> EventOutcome:
    return EventOutcome(_id(e), attempt, PENDING, next_at)


def _id(e: WebhookEvent | str) -> str:
    return e if isinstance(e, str) else e.id


def view(e: WebhookEvent) -> tuple[str, EventState, int, datetime | None]:
    """What a store says of an event, its position (the store's own number) aside."""
    return e.id, e.state, e.attempts, e.next_at


# --- each step its own unit of work, committed -----------------------------------------


async def add(uow_factory: UnitOfWorkFactory, *events: WebhookEvent) -> None:
    async with uow_factory() as uow:
        await uow.webhooks.add_events(list(events))
        await uow.commit()


async def save(uow_factory: UnitOfWorkFactory, *endpoints: Endpoint) -> None:
    async with uow_factory() as uow:
        for e in endpoints:
            await uow.webhooks.save_endpoint(e)
        await uow.commit()


async def claim(uow_factory: UnitOfWorkFactory, customer: int, now: datetime, limit: int,
                lease_until: datetime) -> list[WebhookEvent]:
    async def body(uow: UnitOfWork) -> list[WebhookEvent]:
        claimed = await uow.webhooks.claim(customer, now, limit, lease_until)
        await uow.commit()
        return claimed

    return await in_transaction(uow_factory, body)


async def finish(uow_factory: UnitOfWorkFactory, *outcomes: EventOutcome) -> None:
    async with uow_factory() as uow:
        await uow.webhooks.finish(list(outcomes))
        await uow.commit()


async def due(uow_factory: UnitOfWorkFactory, now: datetime, customers: int = 100) -> list[int]:
    async with uow_factory() as uow:
        return await uow.webhooks.due(now, customers)


async def listed(uow_factory: UnitOfWorkFactory, customer: int, state: EventState | None = None,
                 limit: int = 1000, before: int | None = None) -> list[WebhookEvent]:
    async with uow_factory() as uow:
        return await uow.webhooks.listed(customer, state, limit, before)


async def states(uow_factory: UnitOfWorkFactory, customer: int) -> dict[str, tuple[
        EventState, int, datetime | None]]:
    return {e.id: (e.state, e.attempts, e.next_at) for e in await listed(uow_factory, customer)}


async def subscriptions(uow_factory: UnitOfWorkFactory, *customers: int) -> dict[
        int, frozenset[EventType]]:
    async with uow_factory() as uow:
        return await uow.webhooks.subscriptions(set(customers))


async def _endpoint_rows(uow: UnitOfWork) -> int:
    if isinstance(uow, SqlUnitOfWork):
        count = await uow.connection.execute(
            sa.select(sa.func.count()).select_from(webhook_endpoints))
        return int(count.scalar_one())
    assert isinstance(uow, InMemoryUnitOfWork) and uow.working is not None
    return len(uow.working.endpoints)


# --- endpoints -----------------------------------------------------------------------


async def test_subscriptions_are_the_enabled_endpoints_and_their_types(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await save(uow_factory, endpoint(1, SENT, FAILED), endpoint(2, EventType.DELIVERED),
               endpoint(3, SENT, disabled_at=at(1)), endpoint(4))
    assert await subscriptions(uow_factory, 1, 2, 3, 4, 5) == {
        1: frozenset({SENT, FAILED}), 2: frozenset({EventType.DELIVERED}),
        4: frozenset(SUBSCRIBABLE)}
    assert await subscriptions(uow_factory, 5, 3) == {}
    assert await subscriptions(uow_factory) == {}
    async with uow_factory() as uow:  # a list with repeats, not a set, is taken too
        assert await uow.webhooks.subscriptions([2, 2, 9]) == {
            2: frozenset({EventType.DELIVERED})}


async def test_an_endpoint_round_trips_every_field(uow_factory: UnitOfWorkFactory) -> None:
    full = Endpoint(
        7, "https://hooks.example.com/" + "p" * (MAX_URL_LENGTH - 26),
        frozenset({SENT, EventType.EXPIRED, EventType.UNDELIVERED}),
        "v1.key-2." + "A" * 200, at(0.123456), previous_secret="v1.key-1." + "b_-" * 60,
        previous_until=at(86_400.654321), disabled_at=at(90_000.000001),
        disabled_reason="410 Gone from the endpoint")
    bare = endpoint(8, SENT)
    await save(uow_factory, full, bare)
    async with uow_factory() as uow:
        assert await uow.webhooks.endpoint(7) == full
        assert len(full.url) == MAX_URL_LENGTH
        assert await uow.webhooks.endpoint(8) == bare
        assert await uow.webhooks.endpoint(9) is None


async def test_saving_again_replaces_the_one_endpoint(uow_factory: UnitOfWorkFactory) -> None:
    first = endpoint(1, SENT, disabled_at=at(5))
    await save(uow_factory, first, endpoint(2, FAILED))
    rotated = replace(first, url="https://new.example.com/hook", events=frozenset({FAILED}),
                      secret="v1.k1.new", previous_secret=first.secret,
                      previous_until=at(86_400), disabled_at=None, disabled_reason="")
    await save(uow_factory, rotated)
    async with uow_factory() as uow:
        assert await uow.webhooks.endpoint(1) == rotated
        assert await _endpoint_rows(uow) == 2
    # Enabled again by the replace: subscribed to its new types.
    assert await subscriptions(uow_factory, 1) == {1: frozenset({FAILED})}
    async with uow_factory() as uow:  # saved twice in one unit of work: still one
        await uow.webhooks.save_endpoint(replace(rotated, url="https://third.example.com/"))
        await uow.webhooks.save_endpoint(replace(rotated, url="https://fourth.example.com/"))
        await uow.commit()
        assert await _endpoint_rows(uow) == 2
        assert (await uow.webhooks.endpoint(1)).url == (  # type: ignore[union-attr]
            "https://fourth.example.com/")


async def test_an_unchanged_save_is_no_second_row(uow_factory: UnitOfWorkFactory) -> None:
    # A replace identical to the row: MariaDB reports no row changed by the UPDATE
    # unless asked for the rows it found, and the store must not insert a second.
    same = endpoint(1, SENT)
    await save(uow_factory, same)
    await save(uow_factory, same)
    async with uow_factory() as uow:
        assert await _endpoint_rows(uow) == 1
        assert await uow.webhooks.endpoint(1) == same


# --- add, due, claim -------------------------------------------------------------------


async def test_due_lists_customers_by_their_longest_due_event(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await add(uow_factory,
              ev("a1", 1, at(0), at(10)), ev("b1", 2, at(0), at(5.5)), ev("a2", 1, at(0), at(30)),
              ev("c1", 3, at(0), at(20)), ev("d1", 4, at(0), at(100)), ev("a3", 1, at(1)))
    # Due is next_at, not created_at: a3 was written last and is the longest due.
    assert await due(uow_factory, at(50)) == [1, 2, 3]
    assert await due(uow_factory, at(50), 2) == [1, 2]
    assert await due(uow_factory, at(50), 1) == [1]
    assert await due(uow_factory, at(5.5)) == [1, 2]  # due at next_at itself
    assert await due(uow_factory, at(5.499999)) == [1]
    assert await due(uow_factory, at(0.5)) == []
    assert await due(uow_factory, at(100)) == [1, 2, 3, 4]
    # Claimed: a customer is listed by its oldest event still due.
    assert len(await claim(uow_factory, 1, at(50), 1, at(500))) == 1  # a3
    assert await due(uow_factory, at(50)) == [2, 1, 3]  # 1 by a1, due at(10)
    await claim(uow_factory, 1, at(50), 10, at(500))
    assert await due(uow_factory, at(50)) == [2, 3]
    assert await due(uow_factory, at(500)) == [2, 3, 4, 1]  # leases lapsed
    async with uow_factory() as uow:  # a plain read: nothing is claimed
        assert await uow.webhooks.due(at(50), 10) == [2, 3]
        assert await uow.webhooks.due(at(50), 10) == [2, 3]


async def test_claim_leases_the_oldest_due_first_and_counts_an_attempt(
    uow_factory: UnitOfWorkFactory,
) -> None:
    e1, e2, e3 = ev("e1", 1, at(0), at(3)), ev("e2", 1, at(0), at(1)), ev("e3", 1, at(0), at(2))
    late, other = ev("late", 1, at(0), at(100)), ev("other", 2, at(0))
    await add(uow_factory, e1, e2, e3, late, other)
    first = await claim(uow_factory, 1, at(10), 2, at(40))
    assert sorted(view(e) for e in first) == [
        ("evt_e2", PENDING, 1, at(40)), ("evt_e3", PENDING, 1, at(40))]
    assert {(e.id, e.customer_id, e.type, e.body, e.created_at) for e in first} == {
        (e.id, 1, SENT, e.body, at(0)) for e in (e2, e3)}
    second = await claim(uow_factory, 1, at(10), 10, at(40))
    assert [view(e) for e in second] == [("evt_e1", PENDING, 1, at(40))]
    assert second[0].body == e1.body and second[0].type is SENT
    # Leased: not due again until the lease ends (its end included).
    assert await claim(uow_factory, 1, at(39.999999), 10, at(80)) == []
    assert await due(uow_factory, at(39.999999)) == [2]
    third = await claim(uow_factory, 1, at(40), 10, at(80))
    assert sorted(view(e) for e in third) == [
        ("evt_e1", PENDING, 2, at(80)), ("evt_e2", PENDING, 2, at(80)),
        ("evt_e3", PENDING, 2, at(80))]
    assert await claim(uow_factory, 1, at(40), 0, at(80)) == []
    assert await claim(uow_factory, 3, at(40), 10, at(80)) == []  # no events at all
    # Only the customer's own; the rest untouched.
    assert await states(uow_factory, 2) == {"evt_other": (PENDING, 0, at(0))}
    assert (await states(uow_factory, 1))["evt_late"] == (PENDING, 0, at(100))


async def test_an_event_due_later_than_written_waits(uow_factory: UnitOfWorkFactory) -> None:
    await add(uow_factory, ev("soon", 1, at(5)), ev("later", 1, at(1), at(60)))
    assert [e.id for e in await claim(uow_factory, 1, at(10), 10, at(100))] == ["evt_soon"]
    assert await claim(uow_factory, 1, at(59), 10, at(80)) == []
    assert [e.id for e in await claim(uow_factory, 1, at(60), 10, at(100))] == ["evt_later"]


async def test_claim_many_leases_each_customers_share_in_store_order(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await add(uow_factory, ev("a1", 1, at(0), at(5)), ev("b1", 2, at(0)), ev("a2", 1, at(1)),
              ev("a3", 1, at(2)), ev("b2", 2, at(0), at(90)), ev("c1", 3, at(3)))
    async with uow_factory() as uow:
        claimed = await uow.webhooks.claim_many({1: 2, 2: 5, 4: 3}, at(10), at(40))
        await uow.commit()
    # 1: its two longest due (a2, a3, not a1); 2: b1 only (b2 not due); 3 not asked.
    assert [view(e) for e in claimed] == [
        ("evt_b1", PENDING, 1, at(40)), ("evt_a2", PENDING, 1, at(40)),
        ("evt_a3", PENDING, 1, at(40))]
    positions = [e.position for e in claimed]
    assert positions == sorted(positions)
    async with uow_factory() as uow:
        assert await uow.webhooks.claim_many({}, at(10), at(40)) == []
        assert [e.id for e in await uow.webhooks.claim_many({1: 5, 3: 5}, at(10), at(40))] == [
            "evt_a1", "evt_c1"]
        assert await uow.webhooks.claim_many({1: 5, 2: 5, 3: 5}, at(10), at(40)) == []
        await uow.commit()
    assert await due(uow_factory, at(39)) == []


async def test_endpoints_reads_several_disabled_ones_too(uow_factory: UnitOfWorkFactory) -> None:
    one, two = endpoint(1, SENT), endpoint(2, FAILED, disabled_at=at(3))
    await save(uow_factory, one, two, endpoint(3))
    async with uow_factory() as uow:
        assert await uow.webhooks.endpoints([1, 2, 2, 9]) == {1: one, 2: two}
        assert await uow.webhooks.endpoints([]) == {}
        assert await uow.webhooks.endpoints({9}) == {}


ROUNDS_OF_RACE = 6
RACED_EVENTS = 24
RACE_NOW, RACE_LEASE = at(60), at(600)


async def _racer(uow_factory: UnitOfWorkFactory, customer: int, limit: int,
                 ready: asyncio.Barrier | None) -> list[str]:
    """One claim, committed; with `ready`, only once the other's transaction is open."""
    async with uow_factory() as uow:
        if ready is not None:
            await uow.webhooks.due(RACE_NOW, 1)  # the transaction has begun
            await ready.wait()
        claimed = await uow.webhooks.claim(customer, RACE_NOW, limit, RACE_LEASE)
        await uow.commit()
        return [e.id for e in claimed]


async def test_racing_claims_never_share_an_event(
    uow_factory: UnitOfWorkFactory, request: pytest.FixtureRequest,
) -> None:
    """Two claims at once, each its own unit of work (on MariaDB: its own connection,
    both transactions open before either claims). However they interleave, no event
    is leased to both, and together they take every due event once."""
    overlap = request.node.callspec.params["uow_factory"] == "mariadb"
    for round_ in range(ROUNDS_OF_RACE):
        customer = 10 + round_
        await add(uow_factory, *(ev(f"r{round_}-{i}", customer, at(i * 0.001))
                                 for i in range(RACED_EVENTS)))
        taken: list[str] = []
        while True:
            ready = asyncio.Barrier(2) if overlap else None
            one, two = await asyncio.gather(_racer(uow_factory, customer, 5, ready),
                                            _racer(uow_factory, customer, 4 + round_ % 3, ready))
            assert not set(one) & set(two), (round_, one, two)
            if not one and not two:
                break
            taken += one + two
        assert sorted(taken) == sorted(f"evt_r{round_}-{i}" for i in range(RACED_EVENTS))
        assert {a for _, a, _ in (await states(uow_factory, customer)).values()} == {1}


# --- finish ----------------------------------------------------------------------------


async def test_finish_delivers_buries_or_retries_and_keeps_each_attempt(
    uow_factory: UnitOfWorkFactory,
) -> None:
    e1, e2, e3 = ev("f1", 1, at(0)), ev("f2", 1, at(0.5)), ev("f3", 1, at(1))
    await add(uow_factory, e1, e2, e3)
    await claim(uow_factory, 1, at(10), 10, at(40))
    a1, a2, a3 = ok(at(11.25)), failing(at(12), None), failing(at(13), 503)
    await finish(uow_factory, delivered(e1, a1), dead(e2, a2), again(e3, a3, at(18.5)))
    assert await states(uow_factory, 1) == {
        "evt_f1": (DELIVERED, 1, at(40)), "evt_f2": (DEAD, 1, at(40)),
        "evt_f3": (PENDING, 1, at(18.5))}
    # Pending again: due at its retry time, not before (the lease no longer counts).
    assert await due(uow_factory, at(18.4)) == []
    assert await due(uow_factory, at(18.5)) == [1]
    [retried] = await claim(uow_factory, 1, at(19), 10, at(49))
    assert view(retried) == ("evt_f3", PENDING, 2, at(49))
    a4 = Attempt(at(20), 429, "", "slow down", 0.123)
    await finish(uow_factory, again(e3, a4, at(25)))
    [retried] = await claim(uow_factory, 1, at(25), 10, at(55))
    a5 = ok(at(26), 1.5)
    await finish(uow_factory, delivered(e3, a5))
    found = {e.id: e for e in await listed(uow_factory, 1)}
    assert [found[e.id].history for e in (e1, e2, e3)] == [(a1,), (a2,), (a3, a4, a5)]
    assert view(found["evt_f3"]) == ("evt_f3", DELIVERED, 3, at(55))
    assert await due(uow_factory, at(10_000)) == []
    # Nothing to finish, and an event no store has: no error, nothing written.
    await finish(uow_factory)
    await finish(uow_factory, delivered("evt_nobody", ok(at(30))))
    assert {e.id: e.history for e in await listed(uow_factory, 1)} == {
        "evt_f1": (a1,), "evt_f2": (a2,), "evt_f3": (a3, a4, a5)}


async def _attempts_kept(uow_factory: UnitOfWorkFactory, tried: list[Attempt]) -> tuple[
        Attempt, ...]:
    e = ev("af", 1, at(0))
    await add(uow_factory, e)
    await claim(uow_factory, 1, at(0), 1, at(30))
    for a in tried:
        await finish(uow_factory, again(e, a, at(0)))
    [found] = await listed(uow_factory, 1)
    return found.history


async def test_attempt_fields_round_trip(uow_factory: UnitOfWorkFactory) -> None:
    tried = [Attempt(at(1.000001), None, "address refused: 10.0.0.1 is private", "", 0.0),
             Attempt(at(2), 500, "", "Ünïcødé ✓ " + "x" * 180, 2.5),
             Attempt(at(3), 204, "", "", 0.0625),
             Attempt(at(4), None, "timeout after 10.0 s", "", 0.08341264724731445),
             Attempt(at(5), 502, "", "", 12.345678901234),
             Attempt(at(6), 400, "e" * 300, "ü" * 300, 1.0)]  # kept to 255 characters
    kept = await _attempts_kept(uow_factory, tried)
    assert [replace(a, seconds=0.0) for a in kept] == [
        replace(a, seconds=0.0, error=a.error[:255], answer=a.answer[:255]) for a in tried]
    assert [a.seconds for a in kept] == [a.seconds for a in tried]


async def test_attempt_seconds_keep_double_precision(uow_factory: UnitOfWorkFactory) -> None:
    tried = [Attempt(at(1), 200, "", "", 0.08341264724731445),
             Attempt(at(2), 500, "", "", 12.345678901234)]
    assert [a.seconds for a in await _attempts_kept(uow_factory, tried)] == [
        0.08341264724731445, 12.345678901234]


async def test_a_lapsed_lease_does_not_move_a_finished_event_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    e1, e2, e3 = ev("l1", 1, at(0)), ev("l2", 1, at(0)), ev("l3", 1, at(0))
    await add(uow_factory, e1, e2, e3)
    await claim(uow_factory, 1, at(1), 10, at(31))  # process A; its lease lapses
    await claim(uow_factory, 1, at(31), 10, at(61))  # process B sends them again
    b1, b2, b3 = ok(at(32)), failing(at(32), 410), ok(at(32))
    await finish(uow_factory, delivered(e1, b1), dead(e2, b2), delivered(e3, b3))
    # A answers late: a failure to retry, a delivery of the dead one, a death.
    a1, a2, a3 = failing(at(40)), ok(at(40)), failing(at(40), None)
    await finish(uow_factory, again(e1, a1, at(45)), delivered(e2, a2), dead(e3, a3))
    found = {e.id: e for e in await listed(uow_factory, 1)}
    assert {i: view(e) for i, e in found.items()} == {
        "evt_l1": ("evt_l1", DELIVERED, 2, at(61)), "evt_l2": ("evt_l2", DEAD, 2, at(61)),
        "evt_l3": ("evt_l3", DELIVERED, 2, at(61))}
    # Both tries happened: both are on record, in the order they were finished.
    assert [found[e.id].history for e in (e1, e2, e3)] == [(b1, a1), (b2, a2), (b3, a3)]
    assert await due(uow_factory, at(10_000)) == []
    assert await claim(uow_factory, 1, at(10_000), 10, at(10_030)) == []


# --- disable, delete -------------------------------------------------------------------


async def test_disable_buries_the_pending_events(uow_factory: UnitOfWorkFactory) -> None:
    await save(uow_factory, endpoint(1, SENT), endpoint(2, SENT))
    waiting, sent, leased = ev("w", 1, at(0), at(50)), ev("s", 1, at(0)), ev("k", 1, at(0.5))
    await add(uow_factory, sent, leased, ev("o", 2, at(0)))
    await claim(uow_factory, 1, at(1), 1, at(31))  # s
    await finish(uow_factory, delivered(sent, ok(at(2))))
    await claim(uow_factory, 1, at(1), 1, at(31))  # k, in flight
    await add(uow_factory, waiting)
    reason = "410 Gone from the endpoint: " + "é" * 300
    async with uow_factory() as uow:
        await uow.webhooks.disable(1, at(5), reason)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.webhooks.endpoint(1) == replace(
            endpoint(1, SENT), disabled_at=at(5), disabled_reason=reason[:255])
        await uow.webhooks.disable(1, at(6), "again")  # disabled already: it stays as was
        await uow.commit()
        assert (await uow.webhooks.endpoint(1)).disabled_at == at(5)  # type: ignore[union-attr]
    assert await states(uow_factory, 1) == {
        "evt_s": (DELIVERED, 1, at(31)), "evt_k": (DEAD, 1, at(31)), "evt_w": (DEAD, 0, at(50))}
    assert await subscriptions(uow_factory, 1, 2) == {2: frozenset({SENT})}
    assert await due(uow_factory, at(100)) == [2]
    assert await claim(uow_factory, 1, at(100), 10, at(130)) == []
    # The send in flight when it was disabled ends: the event stays dead.
    await finish(uow_factory, delivered("evt_k", ok(at(7))))
    assert (await states(uow_factory, 1))["evt_k"] == (DEAD, 1, at(31))
    assert await states(uow_factory, 2) == {"evt_o": (PENDING, 0, at(0))}


async def test_delete_removes_the_endpoint_and_buries_its_events(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await save(uow_factory, endpoint(1, SENT, FAILED), endpoint(2, SENT))
    sent = ev("s", 1, at(0))
    await add(uow_factory, sent, ev("p", 1, at(1)), ev("q", 1, at(2), at(90)), ev("o", 2, at(0)))
    await claim(uow_factory, 1, at(3), 1, at(33))
    await finish(uow_factory, delivered(sent, ok(at(4))))
    async with uow_factory() as uow:
        assert await uow.webhooks.delete_endpoint(1, at(10)) is True
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.webhooks.endpoint(1) is None
        assert await uow.webhooks.delete_endpoint(1, at(11)) is False
        assert await uow.webhooks.delete_endpoint(3, at(11)) is False
        await uow.commit()
    assert await states(uow_factory, 1) == {
        "evt_s": (DELIVERED, 1, at(33)), "evt_p": (DEAD, 0, at(1)), "evt_q": (DEAD, 0, at(90))}
    assert await subscriptions(uow_factory, 1, 2) == {2: frozenset({SENT})}
    assert await due(uow_factory, at(100)) == [2]
    async with uow_factory() as uow:
        assert await _endpoint_rows(uow) == 1
        # Rolled back (no commit): the endpoint and its events stay.
        assert await uow.webhooks.delete_endpoint(2, at(12)) is True
    assert await states(uow_factory, 2) == {"evt_o": (PENDING, 0, at(0))}
    assert await subscriptions(uow_factory, 2) == {2: frozenset({SENT})}


# --- listed, replay, oldest_pending ----------------------------------------------------


async def test_listed_is_newest_first_by_state_with_a_cursor(
    uow_factory: UnitOfWorkFactory,
) -> None:
    mine = [ev(f"m{i}", 1, at(i)) for i in range(7)]
    for i, e in enumerate(mine):  # interleaved with another customer's
        await add(uow_factory, e, ev(f"x{i}", 2, at(i)))
    await claim(uow_factory, 1, at(10), 4, at(40))  # m0..m3
    await finish(uow_factory, delivered(mine[0], ok(at(11))), dead(mine[1], failing(at(11))),
                 delivered(mine[3], ok(at(11))))
    everything = await listed(uow_factory, 1)
    assert [e.id for e in everything] == [f"evt_m{i}" for i in reversed(range(7))]
    positions = [e.position for e in everything]
    assert positions == sorted(positions, reverse=True) and len(set(positions)) == 7
    assert everything[-1] == replace(mine[0], state=DELIVERED, attempts=1, next_at=at(40),
                                     position=everything[-1].position,
                                     history=(ok(at(11)),))
    assert everything[0] == replace(mine[6], next_at=at(6), position=everything[0].position)
    by_state = {s: [e.id for e in await listed(uow_factory, 1, s)] for s in EventState}
    assert by_state == {PENDING: ["evt_m6", "evt_m5", "evt_m4", "evt_m2"],
                        DELIVERED: ["evt_m3", "evt_m0"], DEAD: ["evt_m1"]}
    for state, page_size in ((None, 3), (None, 1), (PENDING, 3), (DELIVERED, 1)):
        pages: list[list[str]] = []
        before: int | None = None
        while page := await listed(uow_factory, 1, state, page_size, before):
            assert len(page) <= page_size
            pages.append([e.id for e in page])
            before = page[-1].position
        flat = [i for p in pages for i in p]
        assert flat == (by_state[state] if state else [e.id for e in everything])
        assert all(len(p) == page_size for p in pages[:-1])
    # A cursor at one of the list: what is older.
    assert [e.id for e in await listed(uow_factory, 1, None, 2, everything[2].position)] == [
        "evt_m3", "evt_m2"]
    assert await listed(uow_factory, 1, None, 10, everything[-1].position) == []
    assert {e.customer_id for e in await listed(uow_factory, 2)} == {2}
    assert len(await listed(uow_factory, 2)) == 7
    assert await listed(uow_factory, 3) == []


async def test_replay_makes_a_finished_event_pending_and_due_now(
    uow_factory: UnitOfWorkFactory,
) -> None:
    sent, gone, busy = ev("rs", 1, at(0)), ev("rg", 1, at(1)), ev("rb", 1, at(2), at(20))
    await add(uow_factory, sent, gone, busy)
    await claim(uow_factory, 1, at(3), 2, at(33))
    await finish(uow_factory, delivered(sent, ok(at(4))), dead(gone, failing(at(4), 410)))
    await claim(uow_factory, 1, at(20), 1, at(200))  # busy: leased
    async with uow_factory() as uow:
        assert await uow.webhooks.replay(1, sent.id, at(60)) is DELIVERED
        assert await uow.webhooks.replay(1, gone.id, at(61)) is DEAD
        assert await uow.webhooks.replay(1, busy.id, at(62)) is PENDING
        assert await uow.webhooks.replay(2, sent.id, at(62)) is None  # not its event
        assert await uow.webhooks.replay(1, "evt_nothing", at(62)) is None
        for near in (sent.id.upper(), sent.id + " ", sent.id + "x" * 100):  # ids are exact
            assert await uow.webhooks.replay(1, near, at(62)) is None
        await uow.commit()
    found = {e.id: e for e in await listed(uow_factory, 1)}
    assert {i: view(e) for i, e in found.items()} == {
        "evt_rs": ("evt_rs", PENDING, 0, at(60)), "evt_rg": ("evt_rg", PENDING, 0, at(61)),
        "evt_rb": ("evt_rb", PENDING, 1, at(200))}
    assert [len(found[e.id].history) for e in (sent, gone, busy)] == [1, 1, 0]
    assert await due(uow_factory, at(59)) == []
    assert await due(uow_factory, at(60)) == [1]
    [again_] = await claim(uow_factory, 1, at(60), 10, at(90))
    assert view(again_) == ("evt_rs", PENDING, 1, at(90))
    assert again_.body == sent.body  # the same event, the same id and payload
    # Replayed twice while pending again: nothing moves.
    async with uow_factory() as uow:
        assert await uow.webhooks.replay(1, sent.id, at(70)) is PENDING
        await uow.commit()
    assert (await states(uow_factory, 1))["evt_rs"] == (PENDING, 1, at(90))


async def test_oldest_pending_is_the_earliest_written_pending_event(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        assert await uow.webhooks.oldest_pending() is None
    first, second = ev("o1", 1, at(3.123456)), ev("o2", 2, at(5))
    await add(uow_factory, ev("o0", 1, at(7)), second, first)
    async with uow_factory() as uow:
        assert await uow.webhooks.oldest_pending() == at(3.123456)
    # A retry due later still counts from when it was written.
    await claim(uow_factory, 1, at(8), 10, at(38))
    await finish(uow_factory, again(first, failing(at(9)), at(500)),
                 delivered("evt_o0", ok(at(9))))
    async with uow_factory() as uow:
        assert await uow.webhooks.oldest_pending() == at(3.123456)
    await claim(uow_factory, 1, at(500), 10, at(530))
    await finish(uow_factory, dead(first, failing(at(501))))
    async with uow_factory() as uow:
        assert await uow.webhooks.oldest_pending() == at(5)
        await uow.webhooks.disable(2, at(502), "410")
        await uow.commit()
        assert await uow.webhooks.oldest_pending() is None


# --- the events settle() writes ----------------------------------------------------------

A, B, C, D = "+989120000001", "+989120000002", "+989120000003", "+989120000004"


async def _gateways(uow_factory: UnitOfWorkFactory) -> dict[int, Gateway]:
    """Customers 1..4 with money; 1 takes sent and failed, 2 only failed, 3 has no
    endpoint, 4 a disabled one."""
    await save(uow_factory, endpoint(1, SENT, FAILED), endpoint(2, FAILED),
               endpoint(4, SENT, FAILED, disabled_at=T0))
    gateways = {c: Gateway(uow_factory, ReceiptPolicy(), customer=c) for c in (1, 2, 3, 4)}
    for gw in gateways.values():
        await gw.top_up(1000)
    return gateways


def _verdicts() -> list[Verdict]:
    return [done(A, "m-a"), Verdict(B, SmsStatus.FAILED, "op-b", FailureReason.REJECTED),
            Verdict(C, SmsStatus.FAILED, reason=FailureReason.EXPIRED),
            Verdict(D, SmsStatus.PENDING)]  # deferred: no event


def _data(sms: str, recipient: str, status: str, error: str | None = None,
          operator: str | None = OP) -> dict[str, object]:
    return {"message_id": sms, "recipient": recipient, "status": status,
            "previous_status": "sending", "error_code": error, "operator": operator,
            "sequence": 1}


async def test_settle_writes_the_subscribed_events_with_the_moves(
    uow_factory: UnitOfWorkFactory,
) -> None:
    gateways = await _gateways(uow_factory)
    deliveries = {c: await gw.accept(f"sms-{c}", (A, B, C, D), share=5)
                  for c, gw in gateways.items()}
    now = gateways[1].now() + timedelta(seconds=2.5)
    async with uow_factory() as uow:
        settled = await settle(uow, [Settlement(d, _verdicts(), retry_at=now + timedelta(
            seconds=30)) for d in deliveries.values()], now)
        await uow.commit()
    assert [len(v) for v in settled.verdicts] == [4] * 4
    events = {e.id: e for e in await listed(uow_factory, 1)}
    wanted = {
        event_id("sms-1", A, 1): (SENT, _data("sms-1", A, "done")),
        event_id("sms-1", B, 1): (FAILED, _data("sms-1", B, "failed", "rejected", "op-b")),
        event_id("sms-1", C, 1): (FAILED, _data("sms-1", C, "failed", "expired", None)),
    }
    assert set(events) == set(wanted)
    for id_, (kind, data) in wanted.items():
        e = events[id_]
        assert (e.customer_id, e.type, e.state, e.attempts, e.created_at, e.next_at,
                e.history) == (1, kind, PENDING, 0, now, now, ())
        assert json.loads(e.body) == {"type": kind.value, "timestamp": now.isoformat(),
                                      "data": data}
    # 2 takes failures only; 3 has no endpoint; 4's is disabled.
    assert {e.id: json.loads(e.body)["data"]["recipient"]
            for e in await listed(uow_factory, 2)} == {
        event_id("sms-2", B, 1): B, event_id("sms-2", C, 1): C}
    assert await listed(uow_factory, 3) == []
    assert await listed(uow_factory, 4) == []
    assert sorted(await due(uow_factory, now)) == [1, 2]  # due since the same instant
    # The same answer again (a redelivery): nothing moves, no second event.
    async with uow_factory() as uow:
        again_ = await settle(uow, [Settlement(deliveries[1], _verdicts()[:3])],
                              now + timedelta(seconds=1))
        await uow.commit()
    assert again_.verdicts == [[]]
    assert len(await listed(uow_factory, 1)) == 3


async def test_a_receipt_after_the_answer_is_the_second_event(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await save(uow_factory, endpoint(1))
    gw = Gateway(uow_factory, ReceiptPolicy(), customer=1)
    await gw.top_up(100)
    delivery = await gw.accept("sms-r", (A,), share=5)
    await gw.answer(delivery, done(A, "m-r"))
    gw.wait(3)
    await gw.take(receipt("m-r", Reported.DELIVERED, gw.now()))
    found = await listed(uow_factory, 1)
    assert [e.id for e in found] == [event_id("sms-r", A, 2), event_id("sms-r", A, 1)]
    data = json.loads(found[0].body)["data"]
    assert (found[0].type, data["status"], data["previous_status"], data["sequence"]) == (
        EventType.DELIVERED, "delivered", "done", 2)


async def test_a_rolled_back_settle_leaves_neither_status_nor_event(
    uow_factory: UnitOfWorkFactory,
) -> None:
    gateways = await _gateways(uow_factory)
    delivery = await gateways[1].accept("sms-x", (A, B, C), share=5)
    now = gateways[1].now() + timedelta(seconds=1)
    async with uow_factory() as uow:
        settled = await settle(uow, [Settlement(delivery, _verdicts()[:3])], now)
        assert [len(v) for v in settled.verdicts] == [3]
        # In the transaction: the moves and their events, side by side.
        assert len(await uow.webhooks.listed(1, None, 10, None)) == 3
        moved = await uow.messages.history(HistoryFilter(1), 10, None)
        assert {m.status for _, m in moved} == {SmsStatus.DONE, SmsStatus.FAILED}
        # No commit.
    rows = await gateways[1].recipients()
    assert {m.status for m in rows.values()} == {SmsStatus.SENDING}
    assert await listed(uow_factory, 1) == []
    assert await due(uow_factory, now + timedelta(days=1)) == []
    async with uow_factory() as uow:
        assert await uow.webhooks.oldest_pending() is None


# --- any sequence of operations, held to the in-memory store --------------------------


@dataclass(frozen=True)
class Add:
    customer: int
    delay: int  # due this long after now (0: at once, next_at left to the store)


@dataclass(frozen=True)
class Claim:
    customer: int
    limit: int
    lease: int


@dataclass(frozen=True)
class Finish:
    ticket: int  # which of the claims not yet finished (a lapsed one too)
    how: Literal["delivered", "dead", "retry"]
    delay: int


@dataclass(frozen=True)
class Replay:
    customer: int
    event: int  # of the events added so far (another customer's too)


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class Disable:
    customer: int


Op = Add | Claim | Finish | Replay | Wait | Disable
CUSTOMERS = (1, 2)

_add = st.builds(Add, st.sampled_from(CUSTOMERS), st.sampled_from([0, 0, 2, 10, 30]))
_claim = st.builds(Claim, st.sampled_from(CUSTOMERS), st.integers(1, 3),
                   st.sampled_from([1, 5, 20]))
_finish = st.builds(Finish, st.integers(0, 20), st.sampled_from(["delivered", "dead", "retry"]),
                    st.sampled_from([0, 1, 5, 20]))
_OPERATIONS: dict[str, st.SearchStrategy[Op]] = {
    "add": _add, "claim": _claim, "finish": _finish,
    "wait": st.builds(Wait, st.sampled_from([0.5, 1, 3, 10, 25])),
    "replay": st.builds(Replay, st.sampled_from(CUSTOMERS), st.integers(0, 20)),
    "disable": st.builds(Disable, st.sampled_from(CUSTOMERS)),
}
# Weighted: mostly the event's life (add, claim, finish, time passing).
operations = st.sampled_from(
    ["add"] * 4 + ["claim"] * 4 + ["finish"] * 4 + ["wait"] * 3 + ["replay"] * 2 + ["disable"],
).flatmap(_OPERATIONS.__getitem__)
scripts = st.lists(operations, min_size=10, max_size=50)


class Pair:
    """The same calls on the reference and the store under test, answers compared."""

    def __init__(self, reference: UnitOfWorkFactory, store: UnitOfWorkFactory) -> None:
        self.ref, self.store = reference, store

    async def both(self, method: str, *args: Any) -> tuple[Any, Any]:
        """The answers of `WebhookRepository.<method>(*args)`: the reference's, the store's."""
        answers = []
        for factory in (self.ref, self.store):
            async with factory() as uow:
                answers.append(await getattr(uow.webhooks, method)(*args))
                await uow.commit()
        return answers[0], answers[1]


async def _wipe(uow_factory: UnitOfWorkFactory) -> None:
    """Empty the webhook tables: each example starts from none (a store for many)."""
    async with uow_factory() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        for table in (webhook_attempts, webhook_events, webhook_endpoints):
            await uow.connection.execute(table.delete())
        await uow.commit()


def _due_keys(db: InMemoryDatabase, now: datetime) -> dict[int, datetime]:
    """Each customer with due events: when its longest due one fell due."""
    keys: dict[int, datetime] = {}
    for e in db.state.webhook_events.values():
        if e.state is PENDING and e.next_at is not None and e.next_at <= now:
            keys[e.customer_id] = min(e.next_at, keys.get(e.customer_id, e.next_at))
    return keys


def _full(events: Sequence[WebhookEvent]) -> list[tuple[object, ...]]:
    return [(e.id, e.customer_id, e.type, e.body, e.created_at, e.state, e.attempts,
             e.next_at, e.history) for e in events]


async def play(store: UnitOfWorkFactory, script: list[Op]) -> None:
    reference = InMemoryDatabase()
    pair = Pair(reference.uow, store)
    now = T0
    added: list[WebhookEvent] = []
    tickets: list[str] = []
    for step in script:
        if isinstance(step, Add):
            e = ev(f"p{len(added)}", step.customer, now,
                   now + timedelta(seconds=step.delay) if step.delay else None)
            added.append(e)
            await pair.both("add_events", [e])
        elif isinstance(step, Claim):
            want, got = await pair.both("claim", step.customer, now, step.limit,
                                        now + timedelta(seconds=step.lease))
            assert sorted(map(view, got)) == sorted(map(view, want)), step
            tickets += [e.id for e in want]
        elif isinstance(step, Finish) and tickets:
            ticket = tickets.pop(step.ticket % len(tickets))
            if step.how == "delivered":
                o = delivered(ticket, ok(now))
            elif step.how == "dead":
                o = dead(ticket, failing(now, 410))
            else:
                o = again(ticket, failing(now), now + timedelta(seconds=step.delay))
            await pair.both("finish", [o])
        elif isinstance(step, Replay) and added:
            e = added[step.event % len(added)]
            want, got = await pair.both("replay", step.customer, e.id, now)
            assert got is want, step
        elif isinstance(step, Wait):
            now += timedelta(seconds=step.seconds)
        elif isinstance(step, Disable):
            await pair.both("disable", step.customer, now, "410")
        # After each step: the same customers due, in the order of their longest due
        # event (customers due since the same instant in either order), the same age.
        keys = _due_keys(reference, now)
        want, got = await pair.both("due", now, 10)
        assert [keys[c] for c in got] == [keys[c] for c in want], (step, got, want)
        want, got = await pair.both("oldest_pending")
        assert got == want, step
    for customer in CUSTOMERS:
        want, got = await pair.both("listed", customer, None, 1000, None)
        assert _full(got) == _full(want)
        for state in EventState:
            want, got = await pair.both("listed", customer, state, 1000, None)
            assert [e.id for e in got] == [e.id for e in want]


# One store for every example, its webhook tables emptied first. MariaDB takes more
# examples than SQLite, whose commits (a WAL sync each) make every example slower.
_ONE_STORE = [HealthCheck.function_scoped_fixture]


@pytest.mark.parametrize("uow_factory", ["sqlite"], indirect=True)
@settings(max_examples=50, suppress_health_check=_ONE_STORE)
@given(script=scripts)
async def test_any_sequence_on_sqlite_ends_as_in_memory(
    uow_factory: UnitOfWorkFactory, script: list[Op],
) -> None:
    await _wipe(uow_factory)
    await play(uow_factory, script)


@pytest.mark.parametrize("uow_factory", ["mariadb"], indirect=True)
@settings(max_examples=60, suppress_health_check=_ONE_STORE)
@given(script=scripts)
async def test_any_sequence_on_mariadb_ends_as_in_memory(
    uow_factory: UnitOfWorkFactory, script: list[Op],
) -> None:
    await _wipe(uow_factory)
    await play(uow_factory, script)
