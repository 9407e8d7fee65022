"""/sms: send, and the per-recipient history, as the Go service answers them."""

from __future__ import annotations

import logging
from typing import Annotated

from litestar import Controller, get, post
from litestar.params import HeaderParameter, Parameter

from smsgw_adapters.observability import tracing
from smsgw_app.api.backpressure import AdmittedSender
from smsgw_app.api.body import JsonBody
from smsgw_app.api.document import AUTH_ERRORS, errors
from smsgw_app.api.query import (
    SEED_PAGE,
    Cursor,
    UserId,
    cursor_text,
    integers_in_query,
    page_size,
)
from smsgw_app.api.schemas import (
    GoStatus,
    HistoryResponse,
    HistoryRow,
    SendSmsRequest,
    SendSmsResponse,
)
from smsgw_app.api.v1.auth import AnyRequest, acting_for, seed_customer_key
from smsgw_core.messages import MessageType, RecipientMessage, SmsStatus
from smsgw_core.pagination import PageRequest
from smsgw_core.ports import HistoryFilter
from smsgw_core.services.history import History
from smsgw_core.services.send_sms import MAX_IDEMPOTENCY_KEY, Accepted, SendSms

log = logging.getLogger("smsgw.api")

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key", required=False, min_length=1, max_length=MAX_IDEMPOTENCY_KEY,
        description=f"Retry-safe sends (1-{MAX_IDEMPOTENCY_KEY} characters): the same key "
        "and body return the first answer and charge once; another body is 409.",
    ),
]

# The Go service's four statuses: a recipient an operator took is `done` there,
# whatever its receipt said later (docs/compatibility.md). A status is matched
# exactly, as the Go service matches it: one it never writes (its Postman
# collection asks for `init`) answers an empty history.
GO_STATUS: dict[SmsStatus, GoStatus] = {
    SmsStatus.PENDING: "pending", SmsStatus.SENDING: "sending",
    SmsStatus.DONE: "done", SmsStatus.FAILED: "failed",
    SmsStatus.DELIVERED: "done", SmsStatus.UNDELIVERED: "done", SmsStatus.EXPIRED: "done",
}
STATUSES: dict[str, frozenset[SmsStatus]] = {}
for _status, _name in GO_STATUS.items():
    STATUSES[_name] = STATUSES.get(_name, frozenset()) | {_status}


class SmsController(Controller):
    path = "/sms"
    tags = ["sms"]

    @post("/send", operation_id="sendSms", status_code=200, dto=JsonBody[SendSmsRequest],
          return_dto=None, guards=[seed_customer_key],
          responses=errors(400, *AUTH_ERRORS, 402, 409, 413, 415, 429, 503),
          summary="Charge the balance and queue one text for every recipient")
    async def send(
        self,
        request: AnyRequest,
        data: SendSmsRequest,
        # The concrete class, not the Sender protocol: Litestar checks a dependency
        # with isinstance, ~6 µs a request against a runtime-checkable protocol.
        sender: AdmittedSender,
        idempotency_key: IdempotencyKey = None,
    ) -> SendSmsResponse:
        acting_for(request, data.customer_id)
        kind = MessageType(data.type)
        accepted = await sender.send(SendSms(
            data.customer_id, data.text, tuple(data.recipients), kind, idempotency_key,
            trace=tracing.capture(),  # the request's span: the parent of the SMS's delivery
        ))
        tracing.annotate({
            tracing.USER_ID: data.customer_id, tracing.SMS_IDENTIFIER: accepted.sms_identifier,
            tracing.TYPE: kind.value,
        })
        log_accepted(accepted, data.customer_id, kind, data.text)
        return SendSmsResponse(
            accepted.sms_identifier, "processing", accepted.segments, accepted.cost,
            accepted.recipients,
        )

    @get("/history", operation_id="smsHistory", guards=[seed_customer_key, integers_in_query],
         responses=errors(400, *AUTH_ERRORS, 503), summary="Per-recipient status, newest first")
    async def history(
        self,
        request: AnyRequest,
        history: History,
        user_id: UserId,
        status: Annotated[str | None, Parameter(
            description="pending, sending, done or failed; any other matches nothing",
        )] = None,
        sms_identifier: str | None = None,
        limit: Annotated[int, page_size()] = SEED_PAGE,
        cursor: Cursor = None,
    ) -> HistoryResponse:
        acting_for(request, user_id)
        page = PageRequest.parse(limit, cursor_text(cursor))
        if status and status not in STATUSES:
            return HistoryResponse([], None)
        query = HistoryFilter(user_id, STATUSES[status] if status else None,
                              sms_identifier or None)
        found = await history.query(query, page)
        return HistoryResponse([_row(m) for m in found.items], found.next_cursor)


def log_accepted(accepted: Accepted, customer_id: int, kind: MessageType, text: str) -> None:
    """The line every accepted send leaves, on the seed route and on /v1 alike."""
    log.info("sms accepted", extra={
        "sms_identifier": accepted.sms_identifier, "user_id": customer_id,
        "type": kind.value, "recipients": accepted.recipients,
        "segments": accepted.segments, "cost": accepted.cost, "text": text,
    })


def _row(m: RecipientMessage) -> HistoryRow:
    return HistoryRow(
        m.customer_id, m.sms_identifier, m.recipient, m.type.value, GO_STATUS[m.status], m.provider,
        m.created_at.isoformat(), m.updated_at.isoformat(),
    )
