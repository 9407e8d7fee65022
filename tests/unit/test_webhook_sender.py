"""The webhook sender against a real HTTP server on 127.0.0.1: what it sends (checked
by the Standard Webhooks reference verifier), what it keeps of an answer, and that
whatever the endpoint or the network does comes back as an attempt, not an error."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from smsgw_adapters.webhooks.address_guard import Guard, GuardedAddresses
from smsgw_adapters.webhooks.sender import HttpWebhookSender
from smsgw_adapters.webhooks.signing import new_secret
from smsgw_core.webhooks import ANSWER_KEPT

OPEN = Guard(allow_http=True, allow_private=True)
BODY = json.dumps({"type": "message.delivered", "data": {"recipient": "+4915112345678"}}).encode()
FAILURE = bytes(range(65, 91)) * 40  # 1,040 bytes, A..Z over and over


@dataclass
class Endpoint:
    port: int
    seen: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    hung: asyncio.Event = field(default_factory=asyncio.Event)  # a request hangs on /hang
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def hits(self, path: str) -> int:
        return sum(1 for seen_path, _, _ in self.seen if seen_path == path)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    state = Endpoint(0)

    async def handle(request: web.Request) -> web.StreamResponse:
        state.seen.append((request.path, await request.read(), dict(request.headers)))
        match request.path:
            case "/ok":
                return web.Response(status=204)
            case "/fail":
                return web.Response(status=500, body=FAILURE)
            case "/huge":
                return web.Response(status=500, body=b"x" * 1_000_000)
            case "/endless":  # says 100 MB, sends 1 MB, then nothing: only a full read waits
                response = web.StreamResponse(status=500, headers={"content-length": "100000000"})
                await response.prepare(request)
                await response.write(b"y" * 1_000_000)
                await asyncio.wait_for(state.release.wait(), 5)
                return response
            case "/hang":
                state.hung.set()
                await asyncio.wait_for(state.release.wait(), 5)
                return web.Response(status=204)
            case "/redirect":
                return web.Response(status=302, headers={"location": "/target"})
            case "/gone":
                return web.Response(status=410, text="endpoint removed")
        return web.Response(status=200, text="target")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    yield state
    state.release.set()
    await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[HttpWebhookSender]:
    sender = HttpWebhookSender(OPEN, timeout_s=2.0)
    yield sender
    await sender.close()


@pytest.fixture
async def names(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, str]]:
    """Host names the loop resolves, name -> address (any other: does not resolve),
    so no test asks real DNS."""
    table: dict[str, str] = {}

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    yield table


def now() -> datetime:
    return datetime.now(UTC)


async def test_a_delivery_is_the_exact_body_signed_with_every_secret(
    endpoint: Endpoint, sender: HttpWebhookSender,
) -> None:
    current, previous = new_secret(), new_secret()
    at = now()
    attempt = await sender.send(endpoint.url("/ok"), "msg_2x7Yq", BODY, [current, previous], at)

    assert (attempt.status_code, attempt.error, attempt.answer) == (204, "", "")
    assert attempt.delivered and attempt.at == at and 0 < attempt.seconds < 2
    [(path, body, seen)] = endpoint.seen
    assert (path, body) == ("/ok", BODY)
    assert seen["webhook-id"] == "msg_2x7Yq"
    assert seen["webhook-timestamp"] == str(int(at.timestamp()))
    assert seen["webhook-signature"].count("v1,") == 2
    assert seen["Content-Type"] == "application/json"
    assert seen["User-Agent"] == "smsgw-webhooks"
    assert "Cookie" not in seen
    for secret in (current, previous):  # either side of a rotation verifies it
        assert Webhook(secret).verify(body, seen) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, seen)


async def test_a_failure_keeps_the_first_bytes_of_the_answer(
    endpoint: Endpoint, sender: HttpWebhookSender,
) -> None:
    attempt = await sender.send(endpoint.url("/fail"), "msg_1", BODY, [new_secret()], now())

    assert (attempt.status_code, attempt.error) == (500, "")
    assert not attempt.delivered
    assert attempt.answer == FAILURE[:ANSWER_KEPT].decode()


async def test_a_huge_answer_is_not_read_in_full(
    endpoint: Endpoint, sender: HttpWebhookSender,
) -> None:
    attempt = await sender.send(endpoint.url("/huge"), "msg_1", BODY, [new_secret()], now())
    assert attempt.status_code == 500
    assert attempt.answer == "x" * ANSWER_KEPT

    # An answer that never ends comes back at once: only its first bytes were waited for.
    started = time.monotonic()
    attempt = await sender.send(endpoint.url("/endless"), "msg_2", BODY, [new_secret()], now())
    assert (attempt.status_code, attempt.error, attempt.answer) == (500, "", "y" * ANSWER_KEPT)
    assert time.monotonic() - started < 1.0


async def test_a_redirect_is_an_answer_not_followed(
    endpoint: Endpoint, sender: HttpWebhookSender,
) -> None:
    attempt = await sender.send(endpoint.url("/redirect"), "msg_1", BODY, [new_secret()], now())

    assert (attempt.status_code, attempt.error) == (302, "")
    assert not attempt.delivered
    assert endpoint.hits("/redirect") == 1 and endpoint.hits("/target") == 0


async def test_a_410_is_returned_as_gone(endpoint: Endpoint, sender: HttpWebhookSender) -> None:
    attempt = await sender.send(endpoint.url("/gone"), "msg_1", BODY, [new_secret()], now())

    assert (attempt.status_code, attempt.answer) == (410, "endpoint removed")
    assert attempt.gone and not attempt.delivered


async def test_an_endpoint_that_hangs_is_a_timeout_after_timeout_s(endpoint: Endpoint) -> None:
    sender = HttpWebhookSender(OPEN, timeout_s=0.5)
    try:
        started = time.monotonic()
        attempt = await sender.send(endpoint.url("/hang"), "msg_1", BODY, [new_secret()], now())
        took = time.monotonic() - started
    finally:
        await sender.close()

    assert (attempt.status_code, attempt.error, attempt.answer) == (
        None, "timeout after 0.5 s", "")
    assert 0.45 <= attempt.seconds <= took < 1.5


async def test_a_cancelled_send_is_cancelled(
    endpoint: Endpoint, sender: HttpWebhookSender,
) -> None:
    task = asyncio.create_task(
        sender.send(endpoint.url("/hang"), "msg_1", BODY, [new_secret()], now()))
    await asyncio.wait_for(endpoint.hung.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_refused_connection_is_an_attempt_without_status(
    sender: HttpWebhookSender,
) -> None:
    # Bound but not listening: the port stays ours, and a connection to it is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        attempt = await sender.send(
            f"http://127.0.0.1:{port}/x", "msg_1", BODY, [new_secret()], now())

    assert attempt.status_code is None and attempt.answer == ""
    assert attempt.error.startswith(f"cannot connect to 127.0.0.1:{port} (")
    assert "\n" not in attempt.error and len(attempt.error) <= 200


async def test_the_guard_refuses_an_address_inside_without_connecting(
    endpoint: Endpoint, names: dict[str, str],
) -> None:
    names["hooks.test"] = "127.0.0.1"
    for guard, url, why in [
        (Guard(), endpoint.url("/ok"), "must be https://"),
        (Guard(allow_http=True), endpoint.url("/ok"), "127.0.0.1: loopback"),
        (Guard(), f"https://127.0.0.1:{endpoint.port}/ok", "127.0.0.1: loopback"),
        (Guard(allow_http=True), endpoint.url("/ok", "[::ffff:127.0.0.1]"),
         "embeds 127.0.0.1, loopback"),
        # A name passes the URL check; what it resolves to is refused when connecting.
        (Guard(allow_http=True), endpoint.url("/ok", "hooks.test"), "127.0.0.1: loopback"),
        (OPEN, endpoint.url("/ok", "nowhere.test"), "nowhere.test: does not resolve"),
    ]:
        sender = HttpWebhookSender(guard, timeout_s=2.0)
        try:
            attempt = await sender.send(url, "msg_1", BODY, [new_secret()], now())
        finally:
            await sender.close()
        assert attempt.status_code is None, url
        assert attempt.error.startswith("address refused: "), (url, attempt.error)
        assert why in attempt.error, (url, attempt.error)
    assert endpoint.seen == []


async def test_the_connection_goes_to_the_address_the_guard_resolved(
    endpoint: Endpoint, sender: HttpWebhookSender, names: dict[str, str],
) -> None:
    # No real DNS knows hooks.test: the connection can only have gone where the
    # guard's resolver said, and the request still names the host.
    names["hooks.test"] = "127.0.0.1"
    attempt = await sender.send(endpoint.url("/ok", "hooks.test"), "msg_1", BODY,
                                [new_secret()], now())

    assert attempt.status_code == 204
    [(_, _, seen)] = endpoint.seen
    assert seen["Host"] == f"hooks.test:{endpoint.port}"

    # Each new connection asks again: now the name points inside, and is refused.
    names["hooks.test"] = "10.0.0.7"
    guarded = HttpWebhookSender(Guard(allow_http=True), timeout_s=2.0)
    try:
        attempt = await guarded.send(endpoint.url("/ok", "hooks.test"), "msg_2", BODY,
                                     [new_secret()], now())
    finally:
        await guarded.close()
    assert (attempt.status_code, attempt.error) == (None, "address refused: 10.0.0.7: private")


async def test_guarded_addresses_names_why_a_url_is_refused(names: dict[str, str]) -> None:
    names.update({"hooks.example.com": "93.184.215.14", "inside.example.com": "10.1.2.3",
                  "localhost.": "127.0.0.1"})
    addresses = GuardedAddresses()

    assert await addresses.refused("https://hooks.example.com/smsgw") is None
    assert await addresses.refused("http://hooks.example.com/smsgw") == "must be https://"
    assert await addresses.refused("https://inside.example.com/x") == "10.1.2.3: private"
    assert await addresses.refused("https://localhost./x") == "127.0.0.1: loopback"
    assert await addresses.refused("https://169.254.169.254/latest") == (
        "169.254.169.254: link-local (where cloud metadata services answer)")
    # Not resolving yet is no reason to refuse: every connection checks again.
    assert await addresses.refused("https://nowhere.example.com/x") is None
    assert await GuardedAddresses(OPEN).refused("http://127.0.0.1:8080/x") is None
