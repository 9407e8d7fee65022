"""/sms: send, and the per-recipient history."""

from __future__ import annotations

import logging
from typing import Annotated

from litestar import Controller, get, post
from litestar.params import HeaderParameter, Parameter

from smsgw_adapters.observability import tracing
from smsgw_app.api.backpressure import AdmittedSender
from smsgw_app.api.body import JsonBody
from smsgw_app.api.query import integers_in_query
from smsgw_app.api.schemas import HistoryResponse, HistoryRow, SendSmsRequest, SendSmsResponse
from smsgw_core.messages import MessageType, RecipientMessage, SmsStatus
from smsgw_core.pagination import MAX_POSITION, PageRequest
from smsgw_core.ports import HistoryFilter
from smsgw_core.services.history import History
from smsgw_core.services.send_sms import SendSms

log = logging.getLogger("smsgw.api")

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key", required=False,
        description="Retry-safe sends: the same key and body return the first answer "
        "and charge once; the same key with another body is 409.",
    ),
]


class SmsController(Controller):
    path = "/sms"
    tags = ["sms"]

    @post("/send", operation_id="sendSms", status_code=200, dto=JsonBody[SendSmsRequest],
          return_dto=None, summary="Charge the balance and queue one text for every recipient")
    async def send(
        self,
        data: SendSmsRequest,
        # The concrete class, not the Sender protocol: Litestar checks a dependency
        # with isinstance, ~6 µs a request against a runtime-checkable protocol.
        sender: AdmittedSender,
        idempotency_key: IdempotencyKey = None,
    ) -> SendSmsResponse:
        kind = MessageType(data.type)
        accepted = await sender.send(SendSms(
            data.customer_id, data.text, tuple(data.recipients), kind, idempotency_key,
            trace=tracing.capture(),  # the request's span: the parent of the SMS's delivery
        ))
        tracing.annotate({
            tracing.USER_ID: data.customer_id, tracing.SMS_IDENTIFIER: accepted.sms_identifier,
            tracing.TYPE: kind.value,
        })
        log.info("sms accepted", extra={
            "sms_identifier": accepted.sms_identifier, "user_id": data.customer_id,
            "type": kind.value, "recipients": accepted.recipients,
            "segments": accepted.segments, "cost": accepted.cost, "text": data.text,
        })
        return SendSmsResponse(
            accepted.sms_identifier, "processing", accepted.segments, accepted.cost,
            accepted.recipients,
        )

    @get("/history", operation_id="smsHistory", guards=[integers_in_query],
         summary="Per-recipient status, newest first")
    async def history(
        self,
        history: History,
        user_id: Annotated[int, Parameter(ge=1, le=MAX_POSITION)],
        status: Annotated[str | None, Parameter(description="pending|sending|done|failed")] = None,
        sms_identifier: str | None = None,
        limit: Annotated[int | None, Parameter(description="1-1000, default 100")] = None,
        cursor: Annotated[str | None, Parameter(description="next_cursor of the page before")]
        = None,
    ) -> HistoryResponse:
        query = HistoryFilter(
            user_id, SmsStatus.parse(status) if status else None, sms_identifier or None
        )
        page = await history.query(query, PageRequest.parse(limit, cursor))
        return HistoryResponse([_row(m) for m in page.items], page.next_cursor)


def _row(m: RecipientMessage) -> HistoryRow:
    return HistoryRow(
        m.user_id, m.sms_identifier, m.recipient, m.type.value, m.status.value.lower(),
        m.provider, m.created_at.isoformat(), m.updated_at.isoformat(),
    )
