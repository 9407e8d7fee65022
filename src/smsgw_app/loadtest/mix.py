"""The request mix: the bodies a run sends, built and serialized before the clock starts."""

from __future__ import annotations

import random

import msgspec

from smsgw_app.loadtest.options import Options

MAX_PLANNED = 100_000  # distinct request bodies built ahead; longer runs cycle through them
CLOSED_LOOP_PLANNED = 20_000


def planned_count(options: Options) -> int:
    """How many distinct requests to build: one per request of an open loop run (up to
    MAX_PLANNED); a closed loop run cycles through CLOSED_LOOP_PLANNED."""
    return (min(MAX_PLANNED, max(1, round(options.rps * options.duration)))
            if options.rps > 0 else CLOSED_LOOP_PLANNED)


def plan_requests(options: Options, count: int, rng: random.Random) -> list[bytes]:
    """`count` serialized requests: Content-Length, the blank line and the JSON body.

    Customers: with probability hot_share the first user, otherwise uniform over
    the others (over all of them when hot_share is 0); express with probability
    express_ratio; `recipients` distinct numbers +4479xxxxxxxx.
    """
    first, users = options.first_user, options.users
    encode = msgspec.json.Encoder().encode
    text = options.text
    planned = []
    for _ in range(count):
        if users == 1 or (options.hot_share > 0 and rng.random() < options.hot_share):
            customer = first
        elif options.hot_share > 0:
            customer = first + 1 + rng.randrange(users - 1)
        else:
            customer = first + rng.randrange(users)
        numbers = [f"+4479{n:08d}" for n in rng.sample(range(10**8), options.recipients)]
        kind = "express" if rng.random() < options.express_ratio else "normal"
        body = encode({"customer_id": customer, "text": text, "recipients": numbers,
                       "type": kind})
        planned.append(b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
    return planned
