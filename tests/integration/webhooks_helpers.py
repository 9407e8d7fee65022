"""Status webhooks end to end: a gateway with its webhook settings (and, split, its
`smsgw webhooks` process), customers with endpoints on the receiver peer
(tests/peers/webhook_receiver.py), and what the events of their recipients must be.

The gateway's environment is receipts_helpers.gateway_env's (SQLite or its own MariaDB
database and queue names) plus the webhook settings; the receiver is one process on
127.0.0.1 with a path per customer, driven here synchronously over HTTP.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.integration.harness import Gateway, wait_until
from tests.integration.helpers import new_key
from tests.integration.receipts_helpers import gateway_env
from tests.peers.webhook_receiver_client import WebhookReceiver

ALL_EVENTS = ["message.sent", "message.failed", "message.delivered", "message.undelivered",
              "message.expired"]
RECEIPT_EVENTS = {"delivered": "message.delivered", "undelivered": "message.undelivered",
                  "expired": "message.expired"}
FAST_RETRIES = "0.3,0.3,0.3,0.3,0.3"  # SMSGW_WEBHOOK_RETRY_S: 6 attempts in about a second
# Every gateway's sealing key: the api and webhooks processes of one gateway share it.
SEALING_KEY = base64.b64encode(os.urandom(32)).decode()


class WebhookGateway(Gateway):
    """A gateway whose split mode also runs `smsgw webhooks` (serve runs the loop itself)."""

    def commands(self) -> dict[str, list[str]]:
        commands = super().commands()
        if self.mode == "split":
            commands["webhooks"] = ["webhooks"]
        return commands


def webhook_gateway(mode: str, workdir: Path, stack: ExitStack, *, unset: Iterable[str] = (),
                    **extra: str) -> WebhookGateway:
    """A gateway not started yet (its port is chosen), stopped when `stack` closes:
    http:// and 127.0.0.1 endpoints allowed, fast retries, unless `extra` says otherwise;
    the variables in `unset` left out."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings = {"SMSGW_WEBHOOK_ALLOW_HTTP": "1", "SMSGW_WEBHOOK_ALLOW_PRIVATE": "1",
                "SMSGW_WEBHOOK_KEY": SEALING_KEY, "SMSGW_WEBHOOK_RETRY_S": FAST_RETRIES, **extra}
    env = gateway_env(mode, workdir, stack, **settings)
    for name in unset:
        env.pop(name, None)
    gateway = WebhookGateway(mode, env, workdir)
    stack.callback(gateway.stop)
    return gateway


def sim_operators(reject_prefix: str, receipts: str | None, seed: int = 7) -> str:
    """SMSGW_OPERATORS of two in-process simulators refusing `reject_prefix` (so those
    recipients fail) and reporting receipts by the plan (`;`-separated), 200 ms after."""
    extra = f"&receipts={receipts}&receipt_delay_ms=200" if receipts else ""
    return ",".join(f"{name}=sim://?reject_prefix={reject_prefix}&seed={seed + i}{extra}"
                    for i, name in enumerate("AB"))


# --- the receiver -----------------------------------------------------------------------


@dataclass
class Receiver:
    """The receiver peer, driven synchronously."""

    peer: WebhookReceiver

    def endpoint(self, name: str) -> str:
        return self.peer.endpoint(name)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.peer.url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def configure(self, name: str, **settings: Any) -> dict[str, Any]:
        return dict(self._call("PUT", f"/_config/{name}", json=settings))

    def received(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/_received/{name}"))

    def events(self, name: str) -> dict[str, dict[str, Any]]:
        """webhook-id -> {"count", "payload", "first_at", "last_at", "codes"} (verified)."""
        return dict(self.received(name)["events"])

    def requests(self, name: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/_requests/{name}")["requests"])


# --- customers ----------------------------------------------------------------------------


@dataclass
class Customer:
    """A customer of the gateway with a key, and (once registered) its endpoint's path
    on the receiver and its signing secret."""

    id: int
    key: str
    path: str = ""
    secret: str = ""
    sent: list[str] = field(default_factory=list)  # message ids, oldest first

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class Customers:
    """Makes customers of one gateway with its admin key (`smsgw keys create --admin`)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.admin = new_key(gateway, "--admin")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def new(self, name: str, balance: int = 10_000) -> Customer:
        with self.gateway.client() as c:
            made = c.post("/v1/customers", headers=self.auth, json={"name": name})
            assert made.status_code == 201, made.text
            customer_id = int(made.json()["id"])
            topped = c.post(f"/v1/customers/{customer_id}/topups", headers=self.auth,
                            json={"amount": balance, "description": "webhook test"})
            assert topped.status_code == 200, topped.text
            key = c.post(f"/v1/customers/{customer_id}/keys", headers=self.auth,
                         json={"name": name})
            assert key.status_code == 201, key.text
        return Customer(customer_id, str(key.json()["key"]))


def register(gateway: Gateway, receiver: Receiver, customer: Customer, path: str,
             events: list[str] | None = None, **receiver_settings: Any) -> dict[str, Any]:
    """PUT /v1/webhook to `path` on the receiver, which is told the secret (and
    `receiver_settings`); the PUT's answer."""
    with gateway.client() as c:
        put = c.put("/v1/webhook", headers=customer.auth,
                    json={"url": receiver.endpoint(path), "events": events or ALL_EVENTS})
    assert put.status_code in (200, 201), put.text
    body: dict[str, Any] = put.json()
    assert body["secret"].startswith("whsec_"), body
    customer.path, customer.secret = path, body["secret"]
    receiver.configure(path, secrets=[customer.secret], **receiver_settings)
    return body


def send(gateway: Gateway, customer: Customer, recipients: list[str],
         text: str = "webhook test") -> str:
    with gateway.client() as c:
        r = c.post("/v1/messages", headers=customer.auth,
                   json={"text": text, "recipients": recipients, "type": "normal"})
    assert r.status_code == 202, r.text
    message_id = str(r.json()["id"])
    customer.sent.append(message_id)
    return message_id


def numbers(customer: Customer, batch: int, count: int, prefix: str = "0912") -> list[str]:
    """`count` recipients of one batch, distinct across customers and batches."""
    return [f"{prefix}{customer.id % 100:02d}{batch:01d}{k:04d}" for k in range(count)]


def get(gateway: Gateway, customer: Customer, path: str, **params: Any) -> httpx.Response:
    with gateway.client() as c:
        return c.get(path, headers=customer.auth, params=params)


def post(gateway: Gateway, customer: Customer, path: str, **kwargs: Any) -> httpx.Response:
    with gateway.client() as c:
        return c.post(path, headers=customer.auth, **kwargs)


def recipients(gateway: Gateway, customer: Customer) -> dict[tuple[str, str], dict[str, Any]]:
    """(message id, recipient) -> its state in GET /v1/messages/{id}, of every message
    the customer sent."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for message_id in customer.sent:
        r = get(gateway, customer, f"/v1/messages/{message_id}")
        assert r.status_code == 200, r.text
        for state in r.json()["recipients"]:
            found[(message_id, state["recipient"])] = state
    return found


def event_list(gateway: Gateway, customer: Customer, status: str | None = None,
               limit: int = 1000) -> list[dict[str, Any]]:
    """Every event of GET /v1/webhook/events (following the cursor), newest first."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    if status is not None:
        params["status"] = status
    while True:
        r = get(gateway, customer, "/v1/webhook/events", **params)
        assert r.status_code == 200, r.text
        page = r.json()
        events.extend(page["events"])
        if page["next_cursor"] is None:
            return events
        params["cursor"] = page["next_cursor"]


# --- what the events must be ----------------------------------------------------------------

Key = tuple[str, str, int]  # (message id, recipient, sequence)


def expected_events(states: dict[tuple[str, str], dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """The events the recipients' statuses imply (all five types subscribed): how the
    delivery ended (sequence 1) and, for a receipt's status, the receipt (sequence 2).
    Each as {"type", and the payload's data fields that follow from the status}."""
    expected: dict[Key, dict[str, Any]] = {}
    for (message_id, recipient), state in states.items():
        status, provider = state["status"], state["provider"] or None
        assert status in ("done", "failed", *RECEIPT_EVENTS), (message_id, recipient, state)
        first = "failed" if status == "failed" else "done"
        expected[(message_id, recipient, 1)] = {
            "type": "message.failed" if first == "failed" else "message.sent",
            "status": first, "previous_status": "sending",
            "operator": None if first == "failed" else provider}
        if status in RECEIPT_EVENTS:
            expected[(message_id, recipient, 2)] = {
                "type": RECEIPT_EVENTS[status], "status": status, "previous_status": "done",
                "operator": provider, "error_code": state["error_code"] or None}
    return expected


def key_of(payload: dict[str, Any]) -> Key:
    data = payload["data"]
    return (data["message_id"], data["recipient"], data["sequence"])


def as_expected(payload: dict[str, Any]) -> dict[str, Any]:
    """The part of a received payload expected_events describes."""
    data = payload["data"]
    seen = {"type": payload["type"], "status": data["status"],
            "previous_status": data["previous_status"], "operator": data["operator"]}
    if data["sequence"] == 2:
        seen["error_code"] = data["error_code"]
    return seen


def by_key(events: dict[str, dict[str, Any]]) -> dict[Key, str]:
    """(message id, recipient, sequence) -> webhook-id; fails if two ids name one move."""
    keys: dict[Key, str] = {}
    for webhook_id, event in events.items():
        key = key_of(event["payload"])
        assert key not in keys, f"{key} came under two webhook-ids: {keys[key]}, {webhook_id}"
        keys[key] = webhook_id
    return keys


def timestamp(payload: dict[str, Any]) -> float:
    """The payload's `timestamp` (when the event was written) in Unix seconds."""
    return datetime.fromisoformat(payload["timestamp"]).timestamp()


def db_events(gateway: Gateway, customer_ids: Iterable[int]) -> dict[str, tuple[str, bool]]:
    """webhook-id -> (state, leased: claimed by a process now) of these customers' events."""
    ids = sorted(customer_ids)
    marks = ",".join("?" for _ in ids)
    rows = gateway.query(f"SELECT event_id, state, claimed_by FROM webhook_events"
                         f" WHERE user_id IN ({marks})", *ids)
    return {str(e): (str(s), c is not None) for e, s, c in rows}


def wait_quiet(gateway: Gateway, customer_ids: list[int], timeout: float = 90) -> None:
    """Until these customers' recipients are all sent or failed, and their statuses and
    webhook events stay the same over three reads half a second apart."""
    marks = ",".join("?" for _ in customer_ids)
    seen: list[object] = []

    def quiet() -> bool:
        gateway.check_alive()
        statuses = gateway.query(
            f"SELECT status, COUNT(*) FROM sms_status WHERE user_id IN ({marks})"
            " GROUP BY status ORDER BY status", *customer_ids)
        events = gateway.query(
            f"SELECT COUNT(*) FROM webhook_events WHERE user_id IN ({marks})", *customer_ids)
        if any(status in ("PENDING", "SENDING") for status, _ in statuses):
            seen.clear()
            return False
        seen.append((statuses, events))
        return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

    wait_until(quiet, timeout=timeout, every=0.5)


def loopback_name() -> str | None:
    """A host name other than localhost (and *.localhost) that resolves here to loopback
    addresses only: from /etc/hosts, or this host's own name; None if there is none."""
    names: list[str] = []
    try:
        for line in Path("/etc/hosts").read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            names.extend(fields[1:])
    except OSError:
        pass
    names.append(socket.gethostname())
    for name in dict.fromkeys(names):
        if name == "localhost" or name.endswith(".localhost"):
            continue
        try:
            found = {info[4][0] for info in socket.getaddrinfo(name, 80,
                                                                type=socket.SOCK_STREAM)}
        except OSError:
            continue
        if found and all(a.startswith("127.") or a == "::1" for a in found):
            return name
    return None
