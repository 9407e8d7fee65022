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

from smsgw_adapters.sql.engine import create_engine
from smsgw_adapters.sql.uow import sql_uow_factory
from smsgw_app.config import Settings
from smsgw_core.ports import ParkedEvent, UnitOfWorkFactory
from smsgw_core.system import SystemClock

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
    engine = create_engine(settings.database_url)
    uow = sql_uow_factory(engine)
    try:
        return await _act(args, uow)
    except Exception as exc:  # the database is away or not migrated: one line, exit 2
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"smsgw: cannot use the database (SMSGW_DATABASE_URL): {reason}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()


async def _act(args: argparse.Namespace, uow: UnitOfWorkFactory) -> int:
    async with uow() as unit:
        if args.action == "list":
            _print(await unit.outbox.parked(LIST_LIMIT))
            return 0
        count = await unit.outbox.requeue(
            None if args.parked else list(args.ids), SystemClock().now()
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
