"""The webhook sender: one signed POST to a customer's endpoint, and what came of it.

The endpoint is the customer's and may be slow, hostile, or pointed at us, so an
attempt is bounded every way: the address guard (address_guard.py) approves the
URL, and the connection goes only to addresses it checked, through a resolver
that asks the guard (aiohttp then connects to those addresses while TLS still
checks the certificate against the host name, and a second DNS lookup, which
could answer otherwise, is never made). No redirect is followed (a 3xx could
point anywhere; it is a failed attempt like any non-2xx), no proxy is taken
from the environment, no cookie is kept, the answer is read only as far as
what is stored of it, and the whole attempt has one deadline.

Whatever the network or the endpoint does becomes an `Attempt` (with no status
code, and why), since the caller retries on its schedule; only a programming
error, or the task's cancellation, is raised.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.payload import BytesPayload

from smsgw_adapters.webhooks.address_guard import AddressRefused, Guard
from smsgw_adapters.webhooks.signing import headers, secret_key
from smsgw_core.webhooks import ANSWER_KEPT, Attempt

if TYPE_CHECKING:
    # A TypedDict that aiohttp 3.10 added; a plain dict is what it takes at run time.
    from aiohttp.abc import ResolveResult

USER_AGENT = "smsgw-webhooks"
ERROR_CHARS = 200
# Idle connections are closed before a receiver's own keep-alive would (5 s is
# common: uvicorn, Node), which would otherwise cut one under the next POST and
# fail an attempt that was never sent.
KEEPALIVE_S = 4.0


class GuardedResolver(AbstractResolver):
    """Every host a connection is made to, resolved and checked by the guard."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        # AddressRefused (a ValueError, not an OSError) reaches send() as it is:
        # aiohttp wraps only OSErrors into its DNS error.
        addresses = await self._guard.resolve(host, port)
        found: list[ResolveResult] = []
        for address in addresses:
            af = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, af):
                continue
            found.append({"hostname": host, "host": str(address), "port": port, "family": af,
                          "proto": 0, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV})
        if not found:
            raise AddressRefused(f"{host}: resolves to no address of family {family!r}")
        return found

    async def close(self) -> None:
        pass


class HttpWebhookSender:
    """The WebhookSender port over aiohttp. Create it anywhere; its session is made
    on the first send, inside the loop that uses it. `close()` it at the end."""

    def __init__(self, guard: Guard, timeout_s: float = 10.0, max_connections: int = 200,
                 per_host: int = 0) -> None:
        self._guard = guard
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        # 0: no cap per host. Customers share hosts (a SaaS receiver, one platform): a
        # cap per host would let one customer's hanging endpoint hold the connections
        # another's needs. The delivery loop caps each customer's attempts instead.
        self._per_host = per_host
        self._session: aiohttp.ClientSession | None = None

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
                # Before any connection: a literal address never reaches the resolver
                # (aiohttp connects to it directly), so this is its only check.
                self._guard.check_url(url)
                async with self._client().post(
                    # A payload already made: aiohttp's lookup of a type's payload class
                    # was a tenth of this process's CPU.
                    url, data=BytesPayload(body, content_type="application/json"),
                    headers=request_headers, allow_redirects=False,
                ) as response:
                    status = response.status
                    answer = await _read_at_most(response.content, ANSWER_KEPT)
        except TimeoutError:  # ours, or aiohttp's (its timeouts are TimeoutErrors too)
            error = f"timeout after {self._timeout_s} s"
        except AddressRefused as exc:
            error = _one_line(f"address refused: {exc}")
        except (aiohttp.ClientError, OSError) as exc:  # refused, reset, TLS, bad answer
            error = _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        else:
            return Attempt(at, status, "", answer.decode(errors="replace"),
                           time.monotonic() - started)
        return Attempt(at, None, error, "", time.monotonic() - started)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, limit_per_host=self._per_host,
                    resolver=GuardedResolver(self._guard),
                    # Every new connection is resolved and checked again: the name
                    # may point elsewhere (inside) since the last one.
                    use_dns_cache=False,
                    keepalive_timeout=KEEPALIVE_S,
                ),
                # The deadline is send()'s, over everything; aiohttp's own (5 min)
                # would only ever be the later one.
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # a proxy would make the connection, not to a checked address
                auto_decompress=False,
            )
        return self._session


async def _read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to `limit` bytes of the answer; the rest is never read (leaving the
    response unread closes its connection rather than draining it)."""
    chunks: list[bytes] = []
    kept = 0
    while kept < limit:
        chunk = await stream.read(limit - kept)
        if not chunk:
            break
        chunks.append(chunk)
        kept += len(chunk)
    return b"".join(chunks)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:ERROR_CHARS]


@functools.lru_cache(maxsize=4096)
def _key(secret: str) -> bytes:
    """A secret's HMAC key, decoded once per secret rather than once per request."""
    return secret_key(secret)
