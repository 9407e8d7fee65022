"""`smsgw outbox list --parked` and `smsgw outbox requeue [ID…|--parked]`.

An event is parked only when its payload is not a delivery (a publish failure
is retried, never parked). Parked events hold their SMS's money until their
validity ends and an operator looks: listing shows why each was parked;
requeueing makes them due again with their attempts from zero (after, say, a
fix of whatever wrote them).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from smsgw_app.config import Settings
from smsgw_app.database import opened
from smsgw_core.ports import Clock, ParkedEvent, UnitOfWorkFactory

LIST_LIMIT = 1000


def add_arguments(outbox: argparse.ArgumentParser) -> None:
    actions = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list outbox events")
    listing.add_argument("--parked", action="store_true", required=True,
                         help="the parked ones (the only listing there is)")
    requeue = actions.add_parser("requeue", help="make parked events due again")
    requeue.add_argument("ids", nargs="*", type=int, metavar="ID", help="event ids")
    requeue.add_argument("--parked", action="store_true", help="every parked event")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "requeue" and bool(args.ids) == bool(args.parked):
        print("smsgw outbox requeue: give event IDs or --parked (one of the two)",
              file=sys.stderr)
        return 2
    # Not migrated here: listing or requeueing must not change the schema.
    async with opened(settings.database_url, migrate=False) as database:  # away: StartupError
        return await _act(args, database.uow(), database.clock())


async def _act(args: argparse.Namespace, uow: UnitOfWorkFactory, clock: Clock) -> int:
    async with uow() as unit:
        if args.action == "list":
            _print(await unit.outbox.parked(LIST_LIMIT))
            return 0
        count = await unit.outbox.requeue(
            None if args.parked else list(args.ids), clock.now()
        )
        await unit.commit()
    print(f"requeued {count} parked event(s)")
    return 0 if count or args.parked else 1


def _print(events: Sequence[ParkedEvent]) -> None:
    print("id\tsms_identifier\tpriority\tattempts\tcreated_at\tlast_error")
    for e in events:
        error = " ".join(e.last_error.split())[:200]
        print(f"{e.id}\t{e.sms_identifier}\t{e.priority}\t{e.attempts}\t"
              f"{e.created_at.isoformat()}\t{error}")
