"""Writing the webhook events of status moves, in the transaction that moves them.

Called by settle() and apply_receipts() before their caller commits: the event
rows and the status rows are one commit, so neither exists without the other.
Only the moves a customer's enabled endpoint subscribed to become events; one
read of the movers' subscriptions per transaction, none written for customers
without an endpoint.
"""

from __future__ import annotations

from datetime import datetime

from smsgw_core.ports import UnitOfWork
from smsgw_core.webhooks import StatusChange, events_for


async def record_events(uow: UnitOfWork, changes: list[StatusChange], now: datetime) -> int:
    """Store the events of `changes` their customers take; how many."""
    if not changes:
        return 0
    subscribed = await uow.webhooks.subscriptions({c.customer_id for c in changes})
    if not subscribed:
        return 0
    events = events_for(changes, subscribed, now)
    await uow.webhooks.add_events(events)
    return len(events)
