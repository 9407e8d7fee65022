"""Run a transaction again when the database gave it up for a concurrent one.

A deadlock (MariaDB 1213), a lock wait timeout (1205) or SQLite busy is not a
failure of the request: the database rolled the transaction back so that
another could finish, and the same transaction run again a moment later
succeeds. The SQL adapter raises `TransientConflict` for these; the helpers
here re-run the whole transaction, a bounded number of times, before anything
is answered or any operator called.

    accepted = await in_transaction(self.uow, self._accept)   # body(uow) -> T

Contract for a body:
- it does everything of one attempt inside the unit of work it is given and
  commits it itself (or not: a body may decide to roll back and return);
- it has no effect outside that unit of work (no notify, no telemetry, no
  operator call, no mutation of the caller's state it relies on later):
  whatever follows a commit goes after the helper returns, since an attempt
  may be run again from the start;
- it may raise any error: only TransientConflict leads to another attempt,
  the rest propagate at once, as does the last TransientConflict.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from smsgw_core.backoff import Backoff
from smsgw_core.errors import TransientConflict
from smsgw_core.ports import UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


# Five tries in all; the pause before each new one is anywhere up to 0.01, 0.02,
# 0.04, 0.08 s ("full jitter": two transactions that deadlocked each other must
# not collide again in lockstep). Well inside a client's patience, and a lock
# wait timeout (seconds) dominates anyway.
CONFLICTS = Backoff(first=0.01, factor=2.0, ceiling=0.2, jitter=1.0, attempts=5)


@dataclass(frozen=True, slots=True)
class ConflictRetry:
    """How often, and after what pause, a conflicting transaction is run again."""

    backoff: Backoff = CONFLICTS
    # No new attempt starts this long after the first began: a lock wait timeout
    # comes only after innodb_lock_wait_timeout (50 s by default; SQLite busy after
    # its 30 s busy timeout), and five of those would outlast any client.
    budget_s: float = 10.0
    sleep: Sleep = field(default=_sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)  # seconds

    def __post_init__(self) -> None:
        if self.backoff.attempts is None:
            raise ValueError("a conflicting transaction is retried a bounded number of times")


RETRY_CONFLICTS = ConflictRetry()


async def retry_conflicts(
    attempt: Callable[[], Awaitable[T]], retry: ConflictRetry = RETRY_CONFLICTS
) -> T:
    """`await attempt()`, again after a pause while it raises TransientConflict.

    At most `retry.backoff.attempts` calls, and none begun later than `retry.budget_s`
    after the first; the last TransientConflict propagates, as does any other
    exception at once. `attempt` must open (and leave) its own unit of work
    each time: see the module's contract.
    """
    started = retry.clock()
    failures = 0
    while True:
        try:
            return await attempt()
        except TransientConflict:
            failures += 1
            pause = retry.backoff.delay(failures)
            if (not retry.backoff.tries_again(failures)
                    or retry.clock() + pause - started > retry.budget_s):
                raise
        await retry.sleep(pause)


async def in_transaction(
    uow: UnitOfWorkFactory,
    body: Callable[[UnitOfWork], Awaitable[T]],
    retry: ConflictRetry = RETRY_CONFLICTS,
) -> T:
    """`body(unit)` in a fresh unit of work, run again while the database says conflict.

    The unit of work is left (rolled back unless the body committed) before
    each new attempt. A conflict raised by a statement, by `commit()` or by
    leaving the unit of work counts. Returns what the successful attempt's
    body returned.
    """

    async def attempt() -> T:
        async with uow() as unit:
            return await body(unit)

    return await retry_conflicts(attempt, retry)
