"""The whole gateway over SMPP (issue 26): an SMSC peer, a gateway bound to it, and
reads of what each side holds once they are done.

The peers are tests/peers/smsc_peer.py's ("node": node-smpp, nobody here wrote it;
"ours": `smsgw operator-sim --smpp`). The gateway runs as real processes
(harness.Gateway): embedded (`smsgw serve`, SQLite) or split (`smsgw api`, `relay`,
`worker` on MariaDB and RabbitMQ). Databases and queues are named `smsgw_sm_…`: this
module's own, dropped and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.integration.harness import Gateway, wait_until
from tests.integration.receipts_helpers import Sent, Snapshot, snapshot
from tests.mariadb import mariadb_database
from tests.peers.smsc_peer import SmscPeer
from tests.rabbitmq import _delete as delete_queues
from tests.services import RABBITMQ_URL, need_rabbitmq, unique_name

OPERATOR = "A"
SOURCE = "98100"
PRICES = {"normal": 1, "express": 3}
FINAL = ("DELIVERED", "UNDELIVERED", "EXPIRED", "FAILED")
# The gateway's time for one message (every part of it, the SMSC's throttling
# included) is far above anything these tests make an SMSC take, so that no send
# times out while it is being answered: a resend then means what the test did. A
# circuit opened by a dropped link lets a trial through after 1 s (5 s by default).
GATEWAY = {"SMSGW_OPERATOR_TIMEOUT_S": "30", "SMSGW_DELIVERY_LEASE_S": "90",
           "SMSGW_BREAKER_RESET_S": "1", "SMSGW_METRICS_PORT": "0",
           "SMSGW_LOG_FORMAT": "text"}


def smpp_url(peer: SmscPeer, password: str | None = None, **options: object) -> str:
    """`smpp://ID:PW@127.0.0.1:PORT?window=10&binds=2&source=98100…` for `peer`."""
    query = {"window": 10, "binds": 2, "source": SOURCE, **options}
    words = "&".join(f"{key}={value}" for key, value in query.items())
    secret = peer.password if password is None else password
    return f"smpp://{peer.system_id}:{secret}@{peer.host}:{peer.port}?{words}"


def gateway_env(mode: str, workdir: Path, stack: ExitStack, **extra: str) -> dict[str, str]:
    """An `embedded` (SQLite, in-process bus) or `split` (MariaDB, RabbitMQ) gateway's
    environment, with GATEWAY's settings under the caller's."""
    env = {**os.environ, **GATEWAY, **extra}
    if mode == "embedded":
        env["SMSGW_DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir / 'smsgw.db'}"
        env["SMSGW_BROKER_URL"] = "memory://"
        return env
    need_rabbitmq()
    env["SMSGW_DATABASE_URL"] = stack.enter_context(mariadb_database("sm"))
    env["SMSGW_BROKER_URL"] = RABBITMQ_URL
    env.update(stack.enter_context(sm_queues()))
    return env


@contextmanager
def sm_queues() -> Iterator[dict[str, str]]:
    """SMSGW_*_QUEUE settings naming queues of this module and run; deleted at exit."""
    names = {f"SMSGW_{lane.upper()}_QUEUE": unique_name(f"sm_{lane}")
             for lane in ("express", "normal", "dead_letter")}
    try:
        yield names
    finally:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, delete_queues(list(names.values()))).result()


def start_gateway(mode: str, workdir: Path, stack: ExitStack, operators: str,
                  **extra: str) -> Gateway:
    """A gateway with SMSGW_OPERATORS=`operators`, started; stopped when `stack` closes."""
    workdir.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(mode, gateway_env(mode, workdir, stack, SMSGW_OPERATORS=operators,
                                        **extra), workdir)
    stack.callback(gateway.stop)
    return gateway.start()


def send(gateway: Gateway, user_id: int, text: str, recipients: list[str],
         sms_type: str = "normal") -> tuple[str, Sent]:
    """POST /sms/send, accepted; its sms_identifier and what it was charged."""
    with gateway.client() as client:
        response = client.post("/sms/send", json={
            "customer_id": user_id, "text": text, "recipients": recipients, "type": sms_type})
    assert response.status_code == 200, response.text
    body = response.json()
    share = body["segments"] * PRICES[sms_type]
    assert body["cost"] == share * len(recipients), body
    return body["sms_identifier"], Sent(body["cost"], share, tuple(recipients))


def numbers(prefix: str, count: int) -> list[str]:
    """`count` numbers of 11 digits starting with `prefix` (e.g. "0912301")."""
    return [f"{prefix}{n:0{11 - len(prefix)}d}" for n in range(count)]


def accepted_at(gateway: Gateway, recipient: str) -> datetime:
    """When the SMS to `recipient` was accepted (its row's created_at), in UTC."""
    [(created,)] = gateway.query("SELECT created_at FROM sms_status WHERE recipient = ?",
                                 recipient)
    moment = created if isinstance(created, datetime) else datetime.fromisoformat(created)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- what the peer holds ------------------------------------------------------------------


def by_destination(peer: SmscPeer) -> dict[str, list[dict[str, Any]]]:
    """destination -> every submit_sm sent to it, in arrival order."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in peer.submits():
        found[record["destination_addr"]].append(record)
    return dict(found)


def first_parts(peer: SmscPeer) -> dict[str, list[dict[str, Any]]]:
    """destination -> the submit_sm of each message sent to it (its first part: the only
    one asking for a receipt, whose message_id the gateway keeps), in arrival order."""
    return {to: [r for r in records if r["registered_delivery"] & 0x03]
            for to, records in by_destination(peer).items()}


def taken(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The submits the SMSC took (a message id), answered or not."""
    return [record for record in records if record["message_id"]]


def unanswered(peer: SmscPeer) -> list[dict[str, Any]]:
    """Taken submits the SMSC has not answered (yet, or ever: the link went first)."""
    return [r for r in peer.submits() if r["message_id"] and r["status"] is None]


# --- waiting until both sides are done ----------------------------------------------------


@dataclass
class Settled:
    snap: Snapshot
    receipts: dict[str, Any]  # the peer's /receipts


def settle(gateway: Gateway, user_id: int, peer: SmscPeer, recipients: int,
           timeout: float = 90, final: Callable[[str], bool] = FINAL.__contains__) -> Settled:
    """Until every one of the user's `recipients` is final, the peer owes no receipt, and
    two reads in a row find nothing changed; the last read."""
    reads: list[tuple[Snapshot, dict[str, Any]]] = []

    def done() -> Settled | None:
        gateway.check_alive()
        receipts = peer.receipts()
        snap = snapshot(gateway, user_id)
        reads.append((snap, receipts))
        if (len(snap.rows) != recipients or receipts["pending"]
                or not all(final(row.status) for row in snap.rows.values())):
            return None
        if len(reads) < 2 or reads[-2][0] != snap or reads[-2][1]["reported"] != receipts[
                "reported"]:
            return None
        return Settled(snap, receipts)

    return wait_until(done, timeout=timeout, every=0.25)  # type: ignore[no-any-return]


def statuses_as_reported(settled: Settled) -> None:
    """Each recipient's status is what the peer reported for the message id it keeps."""
    reported = settled.receipts["reported"]
    for key, row in settled.snap.rows.items():
        assert row.provider == OPERATOR and row.message_id, (key, row)
        assert row.status == reported[row.message_id].upper(), (key, row)
        assert settled.snap.receipts[(OPERATOR, row.message_id)] == row.status.lower(), key
