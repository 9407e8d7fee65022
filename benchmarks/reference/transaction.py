"""The API's accept transaction, statement for statement, over a bare asyncmy connection."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from asyncmy.constants import CLIENT

INSERT_STATUS = (
    "INSERT INTO sms_status (user_id, status, type, recipient, provider, sms_identifier, "
    "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload, priority, "
    "status, attempts, next_run_at, created_at, updated_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
INSERT_CHARGE = (
    "INSERT INTO user_transactions (user_id, amount, transaction_type, description, "
    "transaction_id, created_at) VALUES (%s, %s, %s, %s, %s, %s)"
)
DEBIT = (
    "UPDATE user_balances SET balance=(user_balances.balance + %s), last_updated=%s "
    "WHERE user_balances.user_id = %s AND user_balances.balance + %s >= %s"
)
TEXT = "Load test message from smsgw"  # smsgw loadtest's text: one GSM-7 segment, price 1
COST = 1


async def accept(conn: Any, user_id: int, pool_round_trips: bool) -> bool:
    """One accepted request with one recipient; False when the balance refused it."""
    if pool_round_trips:
        await conn.ping(reconnect=False)
    now = datetime.now(UTC)
    at = now.replace(tzinfo=None)  # naive UTC, as UtcDateTime binds it
    at_s = at.replace(microsecond=0)  # the columns without fractions get whole seconds
    sms = str(uuid.uuid4())
    recipient = f"+4479{random.randrange(10**8):08d}"  # as smsgw loadtest numbers them
    payload = json.dumps({
        "sms_identifier": sms, "user_id": user_id, "type": "normal", "text": TEXT,
        "recipients": [recipient], "unit_share": COST, "accepted_at": now.isoformat(),
    })
    async with conn.cursor() as cur:
        await cur.execute(INSERT_STATUS, (user_id, "PENDING", "normal", recipient, "", sms, at, at))
        await cur.execute(INSERT_OUTBOX, ("sms", sms, "sms.send", payload, 0, "pending", 0,
                                          at, at_s, at))
        await cur.execute(INSERT_CHARGE, (user_id, -COST, "charge",
                                          f"normal sms {sms} to 1 recipient(s)",
                                          f"charge:{sms}", at_s))
        await cur.execute(DEBIT, (-COST, at_s, user_id, -COST, 0))
        debited: bool = cur.rowcount == 1
    if debited:
        await conn.commit()
    else:
        await conn.rollback()
    if pool_round_trips:
        await conn.rollback()
    return debited


LOCK_BALANCES = (
    "SELECT user_id, balance FROM user_balances WHERE user_id IN ({}) "
    "ORDER BY user_id FOR UPDATE"
)
MOVE_BALANCES = (
    "UPDATE user_balances SET balance=(user_balances.balance + "
    "CASE user_balances.user_id {} END), last_updated=%s WHERE user_balances.user_id IN ({})"
)


async def accept_group(conn: Any, user_ids: list[int], pool_round_trips: bool) -> int:
    """`--group N`: N one-recipient requests in one transaction, as the API groups
    concurrent sends (SmsSender.send_many): one multi-row insert per table, the
    accounts locked in user order, one UPDATE … CASE for the balances. Returns how many
    were accepted (all or, when the balances refuse one, none: the API retries
    without it; this yardstick just counts the group refused)."""
    if pool_round_trips:
        await conn.ping(reconnect=False)
    now = datetime.now(UTC)
    at = now.replace(tzinfo=None)
    at_s = at.replace(microsecond=0)
    status_rows, outbox_rows, charge_rows = [], [], []
    for user_id in user_ids:
        sms = str(uuid.uuid4())
        recipient = f"+4479{random.randrange(10**8):08d}"
        payload = json.dumps({
            "sms_identifier": sms, "user_id": user_id, "type": "normal", "text": TEXT,
            "recipients": [recipient], "unit_share": COST, "accepted_at": now.isoformat(),
        })
        status_rows.append((user_id, "PENDING", "normal", recipient, "", sms, at, at))
        outbox_rows.append(("sms", sms, "sms.send", payload, 0, "pending", 0, at, at_s, at))
        charge_rows.append((user_id, -COST, "charge", f"normal sms {sms} to 1 recipient(s)",
                            f"charge:{sms}", at_s))
    moved: dict[int, int] = {}
    for user_id in user_ids:
        moved[user_id] = moved.get(user_id, 0) - COST
    users = sorted(moved)
    async with conn.cursor() as cur:
        await cur.executemany(INSERT_STATUS, status_rows)
        await cur.executemany(INSERT_OUTBOX, outbox_rows)
        await cur.executemany(INSERT_CHARGE, charge_rows)
        await cur.execute(LOCK_BALANCES.format(", ".join(["%s"] * len(users))), users)
        balances = dict(await cur.fetchall())
        covered = all(balances.get(u, 0) + m >= 0 for u, m in moved.items())
        if covered:
            cases = " ".join(["WHEN %s THEN %s"] * len(moved))
            await cur.execute(
                MOVE_BALANCES.format(cases, ", ".join(["%s"] * len(moved))),
                [*(x for u, m in moved.items() for x in (u, m)), at_s, *moved],
            )
    if covered:
        await conn.commit()
    else:
        await conn.rollback()
    if pool_round_trips:
        await conn.rollback()
    return len(user_ids) if covered else 0


def connect_args(url: str) -> dict[str, Any]:
    """asyncmy.connect() arguments from mysql[+asyncmy]://user[:password]@host[:port]/database."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("mysql") or not parts.path.strip("/"):
        raise ValueError(f"{url!r}: expected mysql+asyncmy://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.strip("/"),
        "charset": "utf8mb4",
        "autocommit": False,
        "client_flag": CLIENT.FOUND_ROWS,  # as SQLAlchemy's MySQL dialects connect
        "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    }
