"""The lean HTTP/1.1 client (smsgw_adapters/http_client.py) against real servers on
127.0.0.1: an asyncio server written to misbehave on cue (how it ends an answer,
when it closes), counting its connections, and aiohttp's server over TLS with a
certificate from a test CA (trustme)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
import trustme
from aiohttp import web

from smsgw_adapters.http_client import HttpClient, HttpError, origin_and_target

LOCAL = [ipaddress.ip_address("127.0.0.1")]


async def local(host: str, port: int) -> Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return LOCAL  # every name is this machine: no DNS in a unit test


@dataclass
class Server:
    port: int = 0
    connections: int = 0
    open: int = 0  # connections the client has not closed yet
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    hang: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


ANSWERS = {
    "/ok": b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    "/close": b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
    "/chunked": b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "/until-close": b"HTTP/1.0 201 Created\r\n\r\nall of it",
    "/garbage": b"SMTP ready, not HTTP\r\n\r\n",
    "/interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n"
                b"HTTP/1.1 204 No Content\r\n\r\n",
    "/cut": b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart",
    "/long": b"HTTP/1.1 500 Oops\r\ncontent-length: 100000000\r\n\r\n" + b"z" * 5000,
}


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        state.open += 1
        state.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                first, *lines = head.decode("latin-1").split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                path = first.split(" ")[1]
                state.requests.append((path, headers, body))
                if path == "/hang":
                    state.hang.set()
                    await asyncio.sleep(30)
                if path == "/drop":  # closes without a word
                    break
                writer.write(ANSWERS[path.split("?")[0]])
                await writer.drain()
                if path in ("/close", "/until-close", "/garbage", "/cut"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            state.open -= 1
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = srv.sockets[0].getsockname()[1]
    yield state
    srv.close()
    for writer in state.writers:
        writer.close()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    c = HttpClient(local)
    yield c
    await c.close()


async def test_a_kept_connection_carries_the_next_call(server: Server, client: HttpClient) -> None:
    for i in range(5):
        answer = await client.post(server.url("/ok"), {"webhook-id": f"msg_{i}"}, b"{}", keep=200)
        assert (answer.status, answer.first_bytes) == (200, b"ok")
    assert server.connections == 1
    path, headers, body = server.requests[0]
    assert (path, body) == ("/ok", b"{}")
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["content-type"] == "application/json" and headers["webhook-id"] == "msg_0"


async def test_an_answer_that_closes_is_read_and_its_connection_not_kept(
    server: Server, client: HttpClient,
) -> None:
    assert (await client.post(server.url("/close"), {}, b"", keep=200)).status == 200
    assert (await client.post(server.url("/until-close"), {}, b"", keep=200)) == (
        await client.post(server.url("/until-close"), {}, b"", keep=200))
    answer = await client.post(server.url("/until-close"), {}, b"", keep=200)
    assert (answer.status, answer.first_bytes) == (201, b"all of it")
    assert server.connections == 4


async def test_a_chunked_answer_is_read_as_its_bytes(server: Server, client: HttpClient) -> None:
    answer = await client.post(server.url("/chunked"), {}, b"", keep=200)
    assert (answer.status, answer.first_bytes) == (500, b"hello world")
    answer = await client.post(server.url("/chunked"), {}, b"", keep=7)
    assert (answer.status, answer.first_bytes) == (500, b"hello w")


async def test_only_the_first_bytes_of_a_long_answer_are_waited_for(
    server: Server, client: HttpClient,
) -> None:
    answer = await asyncio.wait_for(client.post(server.url("/long"), {}, b"", keep=200), 2)
    assert (answer.status, answer.first_bytes) == (500, b"z" * 200)
    # The rest is never read: the connection went, the next call has its own.
    assert (await client.post(server.url("/ok"), {}, b"", keep=200)).status == 200
    assert server.connections == 2


async def test_interim_answers_are_passed_over_for_the_final_one(
    server: Server, client: HttpClient,
) -> None:
    answer = await asyncio.wait_for(client.post(server.url("/interim"), {}, b"", keep=200), 2)
    assert (answer.status, answer.first_bytes) == (204, b"")
    assert (await client.post(server.url("/ok"), {}, b"", keep=200)).status == 200
    assert server.connections == 1  # the final answer ended cleanly: the connection was kept


async def test_what_is_not_http_is_an_error(server: Server, client: HttpClient) -> None:
    with pytest.raises(HttpError, match=r"not an HTTP/1\.1 answer"):
        await client.post(server.url("/garbage"), {}, b"", keep=200)


async def test_an_answer_cut_short_is_an_error(server: Server, client: HttpClient) -> None:
    # 200 said, 4 bytes of 100 sent, then the close: not an answer to count on.
    with pytest.raises(HttpError, match="closed in the middle of the answer"):
        await client.post(server.url("/cut"), {}, b"", keep=200)


async def test_a_connection_closed_without_an_answer_is_an_error(
    server: Server, client: HttpClient,
) -> None:
    with pytest.raises(HttpError, match="closed before an answer"):
        await client.post(server.url("/drop"), {}, b"", keep=200)


async def test_a_kept_connection_the_server_closed_is_replaced_unseen(
    server: Server, client: HttpClient,
) -> None:
    assert (await client.post(server.url("/ok"), {}, b"", keep=200)).status == 200
    for writer in server.writers:  # the server's idle timeout, as it were
        writer.close()
    await asyncio.sleep(0.05)
    assert (await client.post(server.url("/ok"), {}, b"", keep=200)).status == 200
    assert server.connections == 2


async def test_an_idle_connection_is_not_kept_past_keepalive(server: Server) -> None:
    client = HttpClient(local, keepalive_s=0.1)
    try:
        await client.post(server.url("/ok"), {}, b"", keep=200)
        await asyncio.sleep(0.2)
        await client.post(server.url("/ok"), {}, b"", keep=200)
        assert server.connections == 2
        # With no more calls, the client still closes it, within a second after.
        await asyncio.sleep(1.5)
        assert server.open == 0
    finally:
        await client.close()


async def test_a_call_in_flight_at_close_does_not_keep_its_connection(server: Server) -> None:
    client = HttpClient(local)
    call = asyncio.create_task(client.post(server.url("/ok"), {}, b"", keep=200))
    await asyncio.sleep(0)  # it has begun
    await client.close()
    assert (await call).status == 200
    await asyncio.sleep(0.1)
    assert server.open == 0


async def test_a_cancelled_call_closes_its_connection(server: Server, client: HttpClient) -> None:
    call = asyncio.create_task(client.post(server.url("/hang"), {}, b"", keep=200))
    await asyncio.wait_for(server.hang.wait(), 2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # Its answer, were it to come, is nobody's: the next call has a connection of its own.
    assert (await client.post(server.url("/ok"), {}, b"", keep=200)).status == 200
    assert server.connections == 2


async def test_a_refused_connection_names_the_address(client: HttpClient) -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises(HttpError, match=rf"cannot connect to 127.0.0.1:{port} \(127.0.0.1: "):
        await client.post(f"http://127.0.0.1:{port}/x", {}, b"", keep=200)


@pytest.mark.parametrize(("url", "host", "target"), [
    ("http://hooks.example.com/a/b?x=1&y=%20#frag", "hooks.example.com", "/a/b?x=1&y=%20"),
    ("https://hooks.example.com", "hooks.example.com", "/"),
    ("https://hooks.example.com:8443/p", "hooks.example.com:8443", "/p"),
    ("http://[::1]:8080/p", "[::1]:8080", "/p"),
    ("http://bücher.example/ä", "xn--bcher-kva.example", "/%C3%A4"),
])
def test_the_request_names_its_host_and_target(url: str, host: str, target: str) -> None:
    origin, sent = origin_and_target(url)
    assert (origin.host_header, sent) == (host, target)


def test_what_is_not_an_http_url_is_refused() -> None:
    for url in ("ftp://hooks.example.com/", "https:///nohost", "hooks.example.com"):
        with pytest.raises(ValueError, match="not an http"):
            origin_and_target(url)


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_port(ca: trustme.CA) -> AsyncIterator[int]:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=202, text=f"tls {request.host}")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.test").configure_cert(context)
    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def test_tls_checks_the_certificate_against_the_host_name(
    ca: trustme.CA, tls_port: int,
) -> None:
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    client = HttpClient(local, ssl_context=trusting)
    try:
        answer = await client.post(f"https://hooks.test:{tls_port}/x", {}, b"", keep=200)
        assert (answer.status, answer.first_bytes) == (202, f"tls hooks.test:{tls_port}".encode())
        # The same address under a name the certificate does not carry: refused.
        with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.post(f"https://other.test:{tls_port}/x", {}, b"", keep=200)
    finally:
        await client.close()

    # A CA nobody trusts: refused too.
    client = HttpClient(local)
    try:
        with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.post(f"https://hooks.test:{tls_port}/x", {}, b"", keep=200)
    finally:
        await client.close()
