"""An upstream operator over HTTP, speaking the protocol in docs/operators.md.

`POST {base_url}/send` with `{"to", "text", "reference"}` answers
`200 {"message_id"}`. A 4xx refuses this message for good (the number is
invalid: another operator would refuse it too), except 408 and 429, which like
5xx, timeouts and connection errors say the operator is sick for now.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from opentelemetry.trace import Span

from smsgw_adapters.observability import tracing
from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms

SNIPPET_CHARS = 120
TRANSIENT_4XX = frozenset({408, 429})
HTTP_STATUS = "http.response.status_code"


def operator_http_client(
    *,
    timeout_s: float = 5.0,
    connect_timeout_s: float = 2.0,
    max_connections: int = 256,
    max_keepalive: int = 64,
) -> httpx.AsyncClient:
    """One pooled client shared by every HTTP operator; close it with `aclose()`.

    Waiting for a free connection counts against the timeout too (and so as an
    operator failure), so size `max_connections` for the sends in flight:
    up to workers x Deliverer.max_parallel (8 x 50 by default).
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive
        ),
        follow_redirects=False,
    )


async def operator_http_client_resource(**options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """`operator_http_client` as a lifecycle resource (dependency-injector's
    `providers.Resource`): the client is closed at shutdown."""
    client = operator_http_client(**options)
    try:
        yield client
    finally:
        await client.aclose()


class HttpOperator:
    def __init__(
        self, name: str, base_url: str, client: httpx.AsyncClient, timeout: float | None = None
    ) -> None:
        """`timeout` (seconds) bounds the wait for the operator's answer; the
        connect timeout stays the client's. None keeps all of the client's."""
        self._name = name
        self._url = base_url.rstrip("/") + "/send"
        self._client = client
        self._timeout = client.timeout if timeout is None else httpx.Timeout(
            timeout, connect=min(timeout, client.timeout.connect or timeout)
        )

    @property
    def name(self) -> str:
        return self._name

    async def send(self, sms: OutgoingSms) -> str:
        # A client span per try, its context passed on in the request's headers.
        with tracing.operator_span(self._name, sms) as span:
            return await self._send(sms, span)

    async def _send(self, sms: OutgoingSms, span: Span) -> str:
        payload = {"to": sms.recipient, "text": sms.text, "reference": sms.reference}
        headers = tracing.inject({}) or None
        try:
            response = await self._client.post(
                self._url, json=payload, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise self._error(ErrorClass.TRANSIENT, f"timeout ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise self._error(ErrorClass.TRANSIENT, _describe(exc)) from exc
        if span.is_recording():
            span.set_attribute(HTTP_STATUS, response.status_code)
        if response.status_code == 200:
            return self._message_id(response)
        error_class = (
            ErrorClass.PERMANENT
            if 400 <= response.status_code < 500 and response.status_code not in TRANSIENT_4XX
            else ErrorClass.TRANSIENT
        )
        raise self._error(error_class, f"HTTP {response.status_code}: {_snippet(response)}")

    def _message_id(self, response: httpx.Response) -> str:
        # The operator may have taken the message, so this is transient: a resend
        # to it carries the same reference and is dropped as a duplicate.
        try:
            message_id = response.json().get("message_id")
        except (ValueError, AttributeError):
            message_id = None
        if not isinstance(message_id, str) or not message_id:
            raise self._error(
                ErrorClass.TRANSIENT, f"HTTP 200 without a message_id: {_snippet(response)}"
            )
        return message_id

    def _error(self, error_class: ErrorClass, reason: str) -> OperatorError:
        return OperatorError(self._name, error_class, reason)


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else "") or "(empty body)"


def _describe(exc: httpx.TransportError) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
