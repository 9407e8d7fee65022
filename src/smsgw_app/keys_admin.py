"""`smsgw keys create|list|revoke`: API keys, against the configured database.

`create` prints the new key alone on the last line of stdout, once: only its
hash is stored, so it cannot be shown again (a lost key is revoked and
replaced). The database is migrated first, as `smsgw seed` does, so a key can
be the first thing made on a new machine.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime

from smsgw_app.config import Settings
from smsgw_app.database import opened
from smsgw_core.errors import InvalidRequest
from smsgw_core.keys import ApiKey
from smsgw_core.services.keys import Keys, NewKey


def add_arguments(keys: argparse.ArgumentParser) -> None:
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a key and print it (once)")
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--admin", action="store_true", help="a key for the admin routes")
    owner.add_argument("--customer", type=int, metavar="ID",
                       help="a key of this customer (created if new)")
    create.add_argument("--name", default="", help="what the key is for (at most 100)")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--customer", type=int, metavar="ID", help="this customer's only")
    revoke = actions.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key_id", metavar="KEY_ID")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    try:  # refused before the database is touched
        new = NewKey(None if args.admin else args.customer, args.name) \
            if args.action == "create" else None
    except InvalidRequest as exc:
        print(f"smsgw keys {args.action}: {exc}", file=sys.stderr)
        return 2
    async with opened(settings.database_url, migrate=True) as database:  # away: StartupError
        return await _act(args, database.keys(), new)


async def _act(args: argparse.Namespace, keys: Keys, new: NewKey | None) -> int:
    if new is not None:
        issued = await keys.create(new)
        whose = "admin" if issued.record.is_admin else f"customer {issued.record.customer_id}"
        print(f"created key {issued.record.key_id} ({whose}); it is shown only this once:")
        print(issued.key, flush=True)
        return 0
    if args.action == "list":
        _print(await keys.listed(args.customer))
        return 0
    if await keys.revoke(args.key_id):
        print(f"revoked key {args.key_id}")
        return 0
    print(f"smsgw keys revoke: no key {args.key_id!r} that is not revoked already",
          file=sys.stderr)
    return 1


def _print(keys: Sequence[ApiKey]) -> None:
    print("key_id\tname\tcustomer\tcreated\tlast_used\trevoked")
    for k in keys:
        name = " ".join(k.name.split())
        customer = "admin" if k.customer_id is None else str(k.customer_id)
        print(f"{k.key_id}\t{name}\t{customer}\t{_when(k.created_at)}\t"
              f"{_when(k.last_used_at)}\t{_when(k.revoked_at)}")


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat(timespec="seconds")
