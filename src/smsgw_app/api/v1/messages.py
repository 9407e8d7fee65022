"""/v1/messages: send as the key's customer, and read its messages back."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter

from smsgw_adapters.observability import tracing
from smsgw_app.api.backpressure import AdmittedSender
from smsgw_app.api.body import JsonBody
from smsgw_app.api.document import AUTH_ERRORS, SECURITY, errors
from smsgw_app.api.query import Cursor, cursor_text, integers_in_query, page_size
from smsgw_app.api.sms import IdempotencyKey, log_accepted
from smsgw_app.api.v1.auth import AnyRequest, customer_key, customer_of
from smsgw_app.api.v1.schemas import (
    MessageAccepted,
    MessageRequest,
    MessageRow,
    MessagesPage,
    MessageView,
    RecipientState,
    Status,
)
from smsgw_core.errors import NotFound
from smsgw_core.messages import MAX_RECIPIENTS, MessageType, RecipientMessage, SmsStatus
from smsgw_core.pagination import DEFAULT_LIMIT, PageRequest
from smsgw_core.ports import HistoryFilter
from smsgw_core.services.history import History
from smsgw_core.services.send_sms import SendSms


class MessagesController(Controller):
    path = "/v1/messages"
    tags = ["v1"]
    guards = [customer_key]
    security = SECURITY

    @post("/", operation_id="v1CreateMessage", status_code=202, dto=JsonBody[MessageRequest],
          return_dto=None, responses=errors(400, *AUTH_ERRORS, 402, 409, 413, 415, 429, 503),
          summary="Charge the key's customer and queue one text for every recipient")
    async def create(
        self, request: AnyRequest, data: MessageRequest, sender: AdmittedSender,
        idempotency_key: IdempotencyKey = None,
    ) -> MessageAccepted:
        customer, kind = customer_of(request), MessageType(data.type)
        accepted = await sender.send(SendSms(
            customer, data.text, tuple(data.recipients), kind, idempotency_key,
            trace=tracing.capture(),
        ))
        tracing.annotate({tracing.USER_ID: customer, tracing.SMS_IDENTIFIER:
                          accepted.sms_identifier, tracing.TYPE: kind.value})
        log_accepted(accepted, customer, kind, data.text)
        return MessageAccepted(accepted.sms_identifier, "processing", accepted.segments,
                               accepted.cost, accepted.recipients)

    @get("/{message_id:str}", operation_id="v1GetMessage",
         responses=errors(*AUTH_ERRORS, 404, 503),
         summary="One message and each recipient's status (404 for another customer's)")
    async def show(self, request: AnyRequest, history: History, message_id: str) -> MessageView:
        query = HistoryFilter(customer_of(request), None, message_id)
        found = await history.query(query, PageRequest(MAX_RECIPIENTS))
        if not found.items:
            raise NotFound(f"no message {message_id[:64]!r}")
        first = found.items[-1]  # newest first: the last is the first written
        return MessageView(first.sms_identifier, first.type.value, first.created_at.isoformat(),
                           [_state(m) for m in reversed(found.items)])

    @get("/", operation_id="v1ListMessages", guards=[integers_in_query],
         responses=errors(400, *AUTH_ERRORS, 503),
         summary="The customer's messages, one row per recipient, newest first")
    async def list_(
        self, request: AnyRequest, history: History,
        status: Annotated[str | None, Parameter(
            description="pending, sending, done, failed, delivered, undelivered or "
            "expired; any other matches nothing",
        )] = None,
        limit: Annotated[int, page_size()] = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> MessagesPage:
        page = PageRequest.parse(limit, cursor_text(cursor))
        if status and status not in STATUSES:
            return MessagesPage([], None)
        query = HistoryFilter(customer_of(request), STATUSES[status] if status else None)
        found = await history.query(query, page)
        return MessagesPage([_row(m) for m in found.items], found.next_cursor)



# /v1 shows every status, each under its own name.
STATUSES: dict[str, SmsStatus] = {status.value.lower(): status for status in SmsStatus}


def _status(m: RecipientMessage) -> Status:
    return m.status.value.lower()  # type: ignore[return-value]  # STATUSES' names


def _delivered_at(m: RecipientMessage) -> str | None:
    return m.delivered_at.isoformat() if m.delivered_at is not None else None


def _state(m: RecipientMessage) -> RecipientState:
    return RecipientState(m.recipient, _status(m), m.provider, m.updated_at.isoformat(),
                          m.error_code, _delivered_at(m))


def _row(m: RecipientMessage) -> MessageRow:
    return MessageRow(m.sms_identifier, m.recipient, m.type.value, _status(m),
                      m.provider, m.created_at.isoformat(), m.updated_at.isoformat(),
                      m.error_code, _delivered_at(m))
