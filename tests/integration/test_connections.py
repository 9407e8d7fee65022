"""Connections over real sockets: half-sent requests and idle connections are closed in
time, connections past the cap are refused with a 503, and a client that leaves
mid-request is not logged as an error."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.integration.harness import Gateway, GatewayFactory, wait_until

# Connection handling is the HTTP server's, the same in every mode.
pytestmark = pytest.mark.parametrize("mode", ["embedded"])

SHORT = {"SMSGW_HTTP_REQUEST_TIMEOUT_S": "1", "SMSGW_HTTP_IDLE_TIMEOUT_S": "1"}


def connect(gw: Gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gw.port), timeout=10)


def closed_after(sock: socket.socket) -> float:
    """Seconds until the server closes `sock` (reading and discarding what it sends)."""
    started = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def top_up_head(user_id: int, length: int) -> bytes:
    return (f"POST /balance/add HTTP/1.1\r\nHost: smsgw\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def no_errors_logged(gw: Gateway) -> None:
    lines = [json.loads(line) for line in gw.logs().splitlines() if line.startswith("{")]
    errors = [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]
    assert not errors, errors
    assert "Traceback" not in gw.logs()


def test_a_request_that_does_not_arrive_whole_is_closed_within_the_timeout(
    make_gateway: GatewayFactory, user_id: int
) -> None:
    gw = make_gateway(**SHORT)
    body = json.dumps({"user_id": user_id, "balance": 10}).encode()
    partials = {
        "nothing": b"",
        "half the headers": b"POST /balance/add HTTP/1.1\r\nHost: smsgw\r\nContent-Ty",
        "half the body": top_up_head(user_id, len(body)) + body[: len(body) // 2],
    }
    for what, sent in partials.items():
        with connect(gw) as sock:
            sock.sendall(sent)
            waited = closed_after(sock)
        assert waited < 1 + 2, f"{what}: still open after {waited:.1f} s"
    assert gw.query("SELECT COUNT(*) FROM user_balances WHERE user_id = ?", user_id) == [(0,)]
    no_errors_logged(gw)


def test_an_idle_keep_alive_connection_is_closed(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(**SHORT)
    with connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: smsgw\r\n\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        waited = closed_after(sock)
    assert waited < 1 + 2, f"still open after {waited:.1f} s"


def test_connections_past_the_cap_are_answered_503(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(SMSGW_HTTP_MAX_CONNECTIONS="3", SMSGW_HTTP_REQUEST_TIMEOUT_S="60")
    held = [connect(gw) for _ in range(3)]  # open, silent: each holds a place

    def refused() -> httpx.Response | None:
        r = httpx.get(f"{gw.url}/healthz", timeout=10)
        return r if r.status_code == 503 else None

    try:
        r = wait_until(refused, timeout=10)
        assert r.json()["message"].startswith("connections:")
        assert r.headers["retry-after"] == "1" and r.headers["connection"] == "close"
        held.pop().close()  # two held and the one asking: the cap itself, served
        wait_until(lambda: httpx.get(f"{gw.url}/healthz", timeout=10).status_code == 200,
                   timeout=10)
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: httpx.get(f"{gw.url}/healthz", timeout=10).status_code == 200, timeout=10)


def test_a_client_leaving_mid_body_is_no_error_and_writes_nothing(
    make_gateway: GatewayFactory, user_id: int
) -> None:
    gw = make_gateway()
    body = json.dumps({"user_id": user_id, "balance": 10}).encode()
    for _ in range(3):
        with connect(gw) as sock:
            sock.sendall(top_up_head(user_id, len(body)) + body[:5])
            time.sleep(0.2)  # the request is in the handler, waiting for the rest
    # Whatever the server makes of it, it names the request once per client.
    wait_until(lambda: gw.logs().count("POST /balance/add") >= 3)
    assert gw.query("SELECT COUNT(*) FROM user_balances WHERE user_id = ?", user_id) == [(0,)]
    no_errors_logged(gw)
    with gw.client() as c:  # and the server goes on serving
        assert c.get("/healthz").status_code == 200
