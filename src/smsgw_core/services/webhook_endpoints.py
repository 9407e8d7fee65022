"""A customer's webhook endpoint: registered, shown, its secret rotated, removed,
tested; its events listed and replayed. What the /v1/webhook routes call.

The signing secret is answered once, when made (PUT, rotation), and stored only
sealed (SecretBox); GET never shows it. A rotation keeps the old secret signing
beside the new one for ROTATION_OVERLAP, as Standard Webhooks' several
signatures allow, so a receiver can switch without losing an event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from smsgw_core.errors import Conflict, InvalidRequest, NotFound
from smsgw_core.pagination import Page, PageRequest, encode_cursor
from smsgw_core.ports import (
    Clock,
    IdGenerator,
    SecretBox,
    UnitOfWork,
    UnitOfWorkFactory,
    WebhookAddresses,
)
from smsgw_core.transactions import in_transaction
from smsgw_core.webhooks import (
    MAX_URL_LENGTH,
    ROTATION_OVERLAP,
    SUBSCRIBABLE,
    Endpoint,
    EventState,
    EventType,
    WebhookEvent,
    test_event,
)

_NAMES = {t.value: t for t in SUBSCRIBABLE}


@dataclass(frozen=True, slots=True)
class Registered:
    endpoint: Endpoint
    secret: str  # plain: answered this once


@dataclass
class WebhookEndpoints:
    uow: UnitOfWorkFactory
    clock: Clock
    box: SecretBox
    addresses: WebhookAddresses
    ids: IdGenerator

    async def put(self, customer_id: int, url: str, events: Sequence[str]) -> Registered:
        kinds = event_types(events)
        if len(url) > MAX_URL_LENGTH:
            raise InvalidRequest("url", f"at most {MAX_URL_LENGTH} characters")
        why = await self.addresses.refused(url)
        if why is not None:
            raise InvalidRequest("url", why)
        secret = self.box.new_secret()
        endpoint = Endpoint(customer_id, url, kinds, self.box.seal(secret), self.clock.now())

        async def body(uow: UnitOfWork) -> None:
            await uow.webhooks.save_endpoint(endpoint)
            await uow.commit()

        await in_transaction(self.uow, body)
        return Registered(endpoint, secret)

    async def find(self, customer_id: int) -> Endpoint | None:
        async with self.uow() as uow:
            return await uow.webhooks.endpoint(customer_id)

    async def get(self, customer_id: int) -> Endpoint:
        async with self.uow() as uow:
            return await _registered(uow, customer_id)

    async def rotate(self, customer_id: int) -> Registered:
        secret = self.box.new_secret()
        now = self.clock.now()

        async def body(uow: UnitOfWork) -> Endpoint:
            current = await _registered(uow, customer_id)
            rotated = replace(current, secret=self.box.seal(secret),
                              previous_secret=current.secret,
                              previous_until=now + ROTATION_OVERLAP)
            await uow.webhooks.save_endpoint(rotated)
            await uow.commit()
            return rotated

        return Registered(await in_transaction(self.uow, body), secret)

    async def delete(self, customer_id: int) -> None:
        async def body(uow: UnitOfWork) -> bool:
            gone = await uow.webhooks.delete_endpoint(customer_id, self.clock.now())
            await uow.commit()
            return gone

        if not await in_transaction(self.uow, body):
            raise NotFound("no webhook endpoint")

    async def test(self, customer_id: int) -> WebhookEvent:
        # "msg_" and 32 hex digits: the 40 characters an event id may have at most.
        event = test_event(customer_id, "msg_" + self.ids.new_id().replace("-", "")[:32],
                           self.clock.now())

        async def body(uow: UnitOfWork) -> None:
            await _enabled(uow, customer_id)
            await uow.webhooks.add_events([event])
            await uow.commit()

        await in_transaction(self.uow, body)
        return event

    async def events(self, customer_id: int, state: EventState | None,
                     page: PageRequest) -> Page[WebhookEvent]:
        async with self.uow() as uow:
            found = await uow.webhooks.listed(customer_id, state, page.limit + 1, page.before)
        items = found[: page.limit]
        more = len(found) > page.limit
        return Page(items, encode_cursor(items[-1].position) if more else None)

    async def replay(self, customer_id: int, event_id: str) -> None:
        async def body(uow: UnitOfWork) -> None:
            await _enabled(uow, customer_id)
            before = await uow.webhooks.replay(customer_id, event_id, self.clock.now())
            if before is None:
                raise NotFound(f"no webhook event {event_id[:64]!r}")
            if before is EventState.PENDING:
                raise Conflict(f"event {event_id[:64]!r} is pending: it is being sent")
            await uow.commit()

        await in_transaction(self.uow, body)


async def _registered(uow: UnitOfWork, customer_id: int) -> Endpoint:
    endpoint = await uow.webhooks.endpoint(customer_id)
    if endpoint is None:
        raise NotFound("no webhook endpoint: PUT /v1/webhook first")
    return endpoint


async def _enabled(uow: UnitOfWork, customer_id: int) -> Endpoint:
    endpoint = await _registered(uow, customer_id)
    if endpoint.disabled_at is not None:
        raise Conflict(f"the endpoint is disabled ({endpoint.disabled_reason}): "
                       "PUT /v1/webhook again to enable it")
    return endpoint


def event_types(names: Sequence[str]) -> frozenset[EventType]:
    if not names:
        raise InvalidRequest("events", "name at least one event type")
    unknown = [n for n in names if n not in _NAMES]
    if unknown:
        raise InvalidRequest("events", f"unknown {unknown[0][:40]!r}: one of "
                             + ", ".join(_NAMES))
    return frozenset(_NAMES[n] for n in names)
