"""After the sending phase: wait until the run's recipients are terminal, and measure.

This run's rows are found by the sms_identifiers the API answered, looked up
in chunks on the unique index (sms_identifier, recipient): exact whatever else
writes to the database meanwhile. SMS whose recipients are all terminal are
not read again, so each poll only reads what is still moving.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from smsgw_adapters.sql.seed import RecipientRow, recipient_outcomes
from smsgw_app.database import opened
from smsgw_app.loadtest.report import percentiles_ms
from smsgw_core.messages import SmsStatus

# The delivery is over: an operator took it (DONE, or already moved on by its receipt)
# or none will (FAILED).
TOOK = frozenset(s.value for s in SmsStatus if s.terminal and s is not SmsStatus.FAILED)
TERMINAL = TOOK | {SmsStatus.FAILED.value}
POLL_S = 0.5
PROGRESS_EVERY_S = 1.0


async def wait_for_delivery(
    database_url: str, accepted: dict[str, int], give_up_after: float,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Poll until every recipient of `accepted` (sms_identifier -> recipients) is terminal.

    Returns the report's "delivery" part. Gives up after `give_up_after` seconds;
    what is not terminal by then is counted unfinished.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    pending = dict(accepted)
    finished: list[RecipientRow] = []
    last_read: list[RecipientRow] = []
    expected = sum(accepted.values())
    shown = loop.time()
    async with opened(database_url, migrate=False) as database:
        engine = database.engine()
        while pending:
            last_read = await recipient_outcomes(engine, pending)
            by_sms: dict[str, list[RecipientRow]] = defaultdict(list)
            for row in last_read:
                by_sms[row.sms_identifier].append(row)
            for sms, rows in by_sms.items():
                if len(rows) >= pending[sms] and all(r.status in TERMINAL for r in rows):
                    finished.extend(rows)
                    del pending[sms]
            if progress is not None and (not pending or loop.time() - shown >= PROGRESS_EVERY_S):
                shown = loop.time()
                terminal = len(finished) + sum(
                    1 for r in last_read if r.sms_identifier in pending and r.status in TERMINAL)
                progress(f"waiting for delivery: {terminal}/{expected} recipients terminal")
            if not pending or loop.time() + POLL_S > deadline:
                break
            await asyncio.sleep(POLL_S)
    still_moving = [r for r in last_read if r.sms_identifier in pending]
    return summarize(finished + still_moving, expected)


def summarize(rows: list[RecipientRow], expected: int) -> dict[str, Any]:
    """The delivery figures from the recipients' rows (terminal or not)."""
    terminal = [r for r in rows if r.status in TERMINAL]
    delivered = sum(1 for r in terminal if r.status in TOOK)
    per_s: float | None = None
    if terminal:
        span = (max(r.updated_at for r in terminal)
                - min(r.created_at for r in rows)).total_seconds()
        per_s = round(len(terminal) / span, 3) if span > 0 else None
    latency: dict[str, dict[str, Any]] = {}
    for kind in ("express", "normal"):
        seconds = [(r.updated_at - r.created_at).total_seconds()
                   for r in terminal if r.type.lower() == kind]
        latency[kind] = {**percentiles_ms(seconds), "count": len(seconds)}
    return {
        "delivered": delivered,
        "failed": len(terminal) - delivered,
        "unfinished": expected - len(terminal),
        "delivered_per_s": per_s,
        "latency_ms": latency,
    }
