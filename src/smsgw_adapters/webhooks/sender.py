"""The webhook sender: one signed POST to a customer's endpoint, and what came of it.

The endpoint is the customer's and may be slow, hostile, or pointed at us, so an
attempt is bounded every way: the address guard (address_guard.py) approves the
URL, and every new connection goes only to addresses it resolved and checked
(TLS still checks the certificate against the host name, and a second DNS lookup,
which could answer otherwise, is never made). No redirect is followed (a 3xx could
point anywhere; it is a failed attempt like any non-2xx), no proxy is taken from
the environment, no cookie is kept, the answer is read only as far as what is
stored of it, and the whole attempt has one deadline. The HTTP is our lean client
(http_client.py: a third of aiohttp's CPU per request, measured by
benchmarks/webhook_client.py).

Whatever the network or the endpoint does becomes an `Attempt` (with no status
code, and why), since the caller retries on its schedule; only a programming
error, or the task's cancellation, is raised.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Sequence
from datetime import datetime

from smsgw_adapters.http_client import HttpClient, HttpError
from smsgw_adapters.webhooks.address_guard import AddressRefused, Guard
from smsgw_adapters.webhooks.signing import headers, secret_key
from smsgw_core.webhooks import ANSWER_KEPT, Attempt

USER_AGENT = "smsgw-webhooks"
ERROR_CHARS = 200
# Idle connections are closed before a receiver's own keep-alive would (5 s is
# common: uvicorn, Node), which would otherwise cut one under the next POST.
KEEPALIVE_S = 4.0


class HttpWebhookSender:
    """The WebhookSender port over the lean HTTP client. Create it anywhere; use it in
    one event loop; `close()` it at the end. `max_idle` bounds the connections kept
    open between attempts (over every host); attempts in flight are bounded by the
    delivery loop's concurrency, each customer's by its share."""

    def __init__(self, guard: Guard, timeout_s: float = 10.0, max_idle: int = 256,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._guard = guard
        self._timeout_s = timeout_s
        self._client = HttpClient(guard.resolve, keepalive_s=KEEPALIVE_S, max_idle=max_idle,
                                  ssl_context=ssl_context)

    async def send(self, url: str, event_id: str, body: bytes, secrets: Sequence[str],
                   at: datetime) -> Attempt:
        # A secret that is not whsec_ is ours to fix, not the endpoint's: it raises.
        signed = headers([_key(s) for s in secrets], event_id, int(at.timestamp()), body)
        request_headers = {
            **signed, "user-agent": USER_AGENT,
            # The answer is kept only as text for the customer to read; compressed, a
            # few bytes could inflate to gigabytes, so it is asked for (and read) as is.
            "accept-encoding": "identity",
        }
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                # Before any connection: a literal address never reaches the resolver,
                # so this is its only check.
                self._guard.check_url(url)
                answer = await self._client.post(url, request_headers, body,
                                                 keep=ANSWER_KEPT)
        except TimeoutError:
            error = f"timeout after {self._timeout_s} s"
        except AddressRefused as exc:
            error = _one_line(f"address refused: {exc}")
        except HttpError as exc:  # no connection, or no answer on it: it says which
            error = _one_line(str(exc))
        except (OSError, ValueError) as exc:  # TLS, a URL that is not http(s)
            error = _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        else:
            return Attempt(at, answer.status, "", answer.first_bytes.decode(errors="replace"),
                           time.monotonic() - started)
        return Attempt(at, None, error, "", time.monotonic() - started)

    async def close(self) -> None:
        await self._client.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:ERROR_CHARS]


@functools.lru_cache(maxsize=4096)
def _key(secret: str) -> bytes:
    """A secret's HMAC key, decoded once per secret rather than once per request."""
    return secret_key(secret)
