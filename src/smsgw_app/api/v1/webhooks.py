"""/v1/webhook: the key's customer's status webhook endpoint and its events; and the
admins' read of any customer's (/v1/customers/{id}/webhook)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import Parameter

from smsgw_app.api.body import JsonBody
from smsgw_app.api.document import AUTH_ERRORS, SECURITY, errors
from smsgw_app.api.query import Cursor, cursor_text, integers_in_query, page_size
from smsgw_app.api.v1.admin import BODY_ERRORS, CustomerId
from smsgw_app.api.v1.auth import AnyRequest, admin_key, customer_key, customer_of
from smsgw_core.pagination import DEFAULT_LIMIT, PageRequest
from smsgw_core.services.customers import Customers
from smsgw_core.services.webhook_endpoints import WebhookEndpoints
from smsgw_core.webhooks import MAX_URL_LENGTH, Attempt, Endpoint, EventState, WebhookEvent

EventName = Literal["message.sent", "message.delivered", "message.undelivered",
                    "message.failed", "message.expired"]
EventStatus = Literal["pending", "delivered", "dead"]


# What the address guard takes as a URL: http(s), a host name or IPv4 address, a port
# 1-65535, no credentials, the rest printable ASCII (percent-encode anything else).
# http:// only with SMSGW_WEBHOOK_ALLOW_HTTP; where the host resolves is checked on
# registration and at every connection.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = (r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
         r"|[1-9][0-9]{0,3})")
# (?!\n): Python's $ also matches before a last newline, a JSON Schema's does not.
URL_PATTERN = rf"^https?://{_LABEL}(?:\.{_LABEL})*(?::{_PORT})?(?:[/?#][!-~]*)?(?!\n)$"


class WebhookRequest(msgspec.Struct):
    url: Annotated[str, msgspec.Meta(
        min_length=1, max_length=MAX_URL_LENGTH, pattern=URL_PATTERN,
        description="https:// (http:// where allowed); it must not resolve to a loopback, "
        "private or link-local address")]
    events: Annotated[list[EventName], msgspec.Meta(min_length=1, max_length=5)]


class WebhookView(msgspec.Struct):
    url: str
    events: list[str]
    created_at: str
    enabled: bool
    disabled_at: str | None
    disabled_reason: str
    previous_secret_until: str | None  # a rotation's old secret signs until then


class WebhookCreated(msgspec.Struct):
    url: str
    events: list[str]
    created_at: str
    secret: str  # shown this once: the gateway keeps it sealed


class SecretRotated(msgspec.Struct):
    secret: str  # shown this once
    previous_secret_until: str


class EventQueued(msgspec.Struct):
    id: str
    status: EventStatus


class AttemptView(msgspec.Struct):
    at: str
    status_code: int | None
    error: str
    answer: str  # the first 200 bytes of the endpoint's answer


class EventView(msgspec.Struct):
    id: str
    type: str
    status: EventStatus
    created_at: str
    next_attempt_at: str | None  # pending: when it is tried next
    payload: dict[str, Any]
    attempts: list[AttemptView]


class CustomerWebhook(msgspec.Struct):
    customer_id: int
    endpoint: WebhookView | None  # null: the customer has none


class EventsPage(msgspec.Struct):
    events: list[EventView]
    next_cursor: str | None


StatusFilter = Annotated[EventStatus | None, Parameter(
    description="pending, delivered or dead; none: every event")]
NO_ENDPOINT = 404


class WebhookController(Controller):
    path = "/v1/webhook"
    tags = ["v1 webhooks"]
    guards = [customer_key]
    security = SECURITY

    @put("/", operation_id="v1PutWebhook", dto=JsonBody[WebhookRequest], return_dto=None,
         responses=errors(*BODY_ERRORS, *AUTH_ERRORS, 503),
         summary="Create or replace the customer's endpoint; its signing secret, shown once")
    async def put_(self, request: AnyRequest, data: WebhookRequest,
                   webhooks: WebhookEndpoints) -> WebhookCreated:
        made = await webhooks.put(customer_of(request), data.url, list(data.events))
        e = made.endpoint
        return WebhookCreated(e.url, _names(e), e.created_at.isoformat(), made.secret)

    @get("/", operation_id="v1GetWebhook", responses=errors(*AUTH_ERRORS, NO_ENDPOINT, 503),
         summary="The customer's endpoint (never its secret)")
    async def show(self, request: AnyRequest, webhooks: WebhookEndpoints) -> WebhookView:
        return _view(await webhooks.get(customer_of(request)))

    @delete("/", operation_id="v1DeleteWebhook", status_code=204,
            responses=errors(*AUTH_ERRORS, NO_ENDPOINT, 503),
            summary="Remove the endpoint; its events not yet delivered are dropped (dead)")
    async def remove(self, request: AnyRequest, webhooks: WebhookEndpoints) -> None:
        await webhooks.delete(customer_of(request))

    @post("/secret", operation_id="v1RotateWebhookSecret", status_code=200,
          responses=errors(*AUTH_ERRORS, NO_ENDPOINT, 503),
          summary="A new signing secret, shown once; the old one signs beside it for 24 h")
    async def rotate(self, request: AnyRequest, webhooks: WebhookEndpoints) -> SecretRotated:
        made = await webhooks.rotate(customer_of(request))
        until = made.endpoint.previous_until
        return SecretRotated(made.secret, until.isoformat() if until else "")

    @post("/test", operation_id="v1TestWebhook", status_code=202,
          responses=errors(*AUTH_ERRORS, NO_ENDPOINT, 409, 503),
          summary="Queue a webhook.test event to the endpoint")
    async def test(self, request: AnyRequest, webhooks: WebhookEndpoints) -> EventQueued:
        event = await webhooks.test(customer_of(request))
        return EventQueued(event.id, "pending")

    @get("/events", operation_id="v1ListWebhookEvents", guards=[integers_in_query],
         responses=errors(400, *AUTH_ERRORS, 503),
         summary="The customer's webhook events with their attempts, newest first")
    async def events(self, request: AnyRequest, webhooks: WebhookEndpoints,
                     status: StatusFilter = None,
                     limit: Annotated[int, page_size()] = DEFAULT_LIMIT,
                     cursor: Cursor = None) -> EventsPage:
        return await _events(webhooks, customer_of(request), status, limit, cursor)

    @post("/events/{event_id:str}/replay", operation_id="v1ReplayWebhookEvent",
          status_code=202, responses=errors(*AUTH_ERRORS, 404, 409, 503),
          summary="Send a delivered or dead event again (the same webhook-id)")
    async def replay(self, request: AnyRequest, webhooks: WebhookEndpoints,
                     event_id: str) -> EventQueued:
        await webhooks.replay(customer_of(request), event_id)
        return EventQueued(event_id, "pending")


class CustomerWebhookController(Controller):
    path = "/v1/customers/{customer_id:int}/webhook"
    tags = ["v1 admin"]
    guards = [admin_key]
    security = SECURITY

    @get("/", operation_id="v1GetCustomerWebhook",
         responses=errors(400, *AUTH_ERRORS, 404, 503),
         summary="A customer's webhook endpoint, or null (never its secret); 404: no "
         "such customer")
    async def show(self, customer_id: CustomerId, webhooks: WebhookEndpoints,
                   customers: Customers) -> CustomerWebhook:
        await customers.show(customer_id)  # NotFound for no customer
        found = await webhooks.find(customer_id)
        return CustomerWebhook(customer_id, _view(found) if found is not None else None)

    @get("/events", operation_id="v1ListCustomerWebhookEvents", guards=[integers_in_query],
         responses=errors(400, *AUTH_ERRORS, 404, 503),
         summary="A customer's webhook events with their attempts, newest first")
    async def events(self, customer_id: CustomerId, webhooks: WebhookEndpoints,
                     status: StatusFilter = None,
                     limit: Annotated[int, page_size()] = DEFAULT_LIMIT,
                     cursor: Cursor = None) -> EventsPage:
        return await _events(webhooks, customer_id, status, limit, cursor)


async def _events(webhooks: WebhookEndpoints, customer_id: int, status: str | None,
                  limit: int, cursor: int | None) -> EventsPage:
    page = PageRequest.parse(limit, cursor_text(cursor))
    found = await webhooks.events(customer_id, EventState(status) if status else None, page)
    return EventsPage([_event(e) for e in found.items], found.next_cursor)


def _names(e: Endpoint) -> list[str]:
    return sorted(t.value for t in e.events)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _view(e: Endpoint) -> WebhookView:
    rotating = e.previous_until if e.previous_secret else None
    return WebhookView(e.url, _names(e), e.created_at.isoformat(), e.disabled_at is None,
                       _iso(e.disabled_at), e.disabled_reason, _iso(rotating))


def _event(e: WebhookEvent) -> EventView:
    pending = e.state is EventState.PENDING
    return EventView(e.id, e.type.value, e.state.value,
                     e.created_at.isoformat(), _iso(e.next_at) if pending else None,
                     msgspec.json.decode(e.body), [_attempt(a) for a in e.history])


def _attempt(a: Attempt) -> AttemptView:
    return AttemptView(a.at.isoformat(), a.status_code, a.error, a.answer)
