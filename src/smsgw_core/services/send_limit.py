"""Per-customer send limits: a send over its customer's rate is refused at once,
before anything is charged or written (RateLimited: 429 with Retry-After).

Each customer's rate is its own (`max_recipients_per_s`, set by an admin) or
the gateway's default (SMSGW_CUSTOMER_RATE; none: unlimited). The customers
with a rate of their own are few (an admin sets each): all of them are read
in one query at most once a second (RecentlyRead), so a change is seen within
a second and a send costs no database round trip, however many customers send.
The buckets are this process's: with N API processes behind a balancer a
customer gets at most N times its rate (see docs/api.md, "Send limits").

A send that is then refused for another reason (no balance, a bad number)
gives its recipients back: only accepted recipients count against the limit.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

from smsgw_core.errors import RateLimited
from smsgw_core.ports import UnitOfWork, UnitOfWorkFactory
from smsgw_core.send_limits import ONE_SECOND_BURST, Bucket, Rate
from smsgw_core.services.recently_read import RecentlyRead
from smsgw_core.services.send_sms import Accepted, Sender, SendSms
from smsgw_core.transactions import in_transaction

MAX_BUCKETS = 100_000  # customers remembered; the least recently sending go first
_ALL = "customers with a rate of their own"


class SendLimits:
    def __init__(self, uow: UnitOfWorkFactory, ticks: Callable[[], float],
                 default: Rate | None = None, max_buckets: int = MAX_BUCKETS) -> None:
        self.uow = uow
        self.ticks = ticks  # monotonic seconds
        self.default = default
        self.max_buckets = max_buckets
        self._own: RecentlyRead[str, dict[int, int]] = RecentlyRead(self._read, ticks)
        self._buckets: OrderedDict[int, Bucket] = OrderedDict()

    async def rate(self, customer_id: int) -> Rate | None:
        """The customer's rate now (None: unlimited)."""
        own = (await self._own.get(_ALL)).get(customer_id)
        if own is None:
            return self.default
        return (self.default or ONE_SECOND_BURST).at(own)

    async def take(self, customer_id: int, recipients: int) -> Rate | None:
        """Count a send of `recipients` against the customer's limit (the rate it
        was counted at, for give_back), or raise RateLimited."""
        rate = await self.rate(customer_id)
        if rate is None:
            return None
        now = self.ticks()
        bucket = self._buckets.get(customer_id)
        if bucket is None:
            bucket = self._buckets[customer_id] = Bucket(rate, now)
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(customer_id)
        wait = bucket.take(rate, recipients, now)
        if wait > 0:
            raise RateLimited(customer_id, rate.per_s, rate.burst, max(1, math.ceil(wait)))
        return rate

    def give_back(self, customer_id: int, rate: Rate | None, recipients: int) -> None:
        bucket = self._buckets.get(customer_id)
        if rate is not None and bucket is not None:
            bucket.give_back(rate, recipients)

    async def _read(self, _: str) -> dict[int, int]:
        async def read(uow: UnitOfWork) -> dict[int, int]:
            return await uow.customers.limits()

        return await in_transaction(self.uow, read)


class LimitedSender:
    """A Sender that counts each send against its customer's limit first."""

    def __init__(self, limits: SendLimits, inner: Sender) -> None:
        self.limits = limits
        self.inner = inner

    async def send(self, command: SendSms) -> Accepted:
        recipients = len(command.recipients)
        rate = await self.limits.take(command.customer_id, recipients)
        try:
            return await self.inner.send(command)
        except BaseException:
            self.limits.give_back(command.customer_id, rate, recipients)
            raise
