"""What a simulated operator later reports of the sends it took: a receipt plan.

Both simulators (in process, `sim://?receipts=…`, and over HTTP, `operator-sim
--receipts …`) draw each newly accepted send's fate from a `ReceiptPlan`, then
owe its receipt to a `ReceiptReporter` that hands it over once due, in batches,
and again and again until the gateway acknowledges it: a real operator does
not forget a receipt because the gateway was away.

    delivered=0.85,undelivered=0.08,expired=0.02,none=0.05

are shares of the accepted sends; `none` is never reported (an operator that
keeps silent), a share not named is 0. `;` separates them as well as `,` does:
in SMSGW_OPERATORS a comma separates operators.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import logging
import math
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from smsgw_core.backoff import Backoff
from smsgw_core.receipts import Reported

log = logging.getLogger("smsgw.operator_sim")

NEVER = "none"  # the plan's word for a send the operator never reports
# An operator's own codes, so the gateway has one to keep; delivered has none.
ERROR_CODES = {Reported.DELIVERED: "", Reported.UNDELIVERED: "001", Reported.EXPIRED: "002"}


class ReceiptPlanError(ValueError):
    """A receipt plan that cannot be; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class ReceiptPlan:
    delivered: float = 1.0
    undelivered: float = 0.0
    expired: float = 0.0
    none: float = 0.0

    def __post_init__(self) -> None:
        for name, share in self._shares():
            if not 0 <= share <= 1:  # NaN fails this too
                raise ReceiptPlanError(f"the share of {name} must be between 0 and 1, not {share}")
        total = math.fsum(share for _, share in self._shares())
        if abs(total - 1) > 1e-6:
            raise ReceiptPlanError(f"the shares must add up to 1, not {total:g}")

    @classmethod
    def parse(cls, text: str) -> ReceiptPlan:
        """The plan `delivered=0.85,undelivered=0.08,expired=0.02,none=0.05` says
        (or the same with `;`)."""
        names = {f.name for f in fields(cls)}
        shares: dict[str, float] = {}
        for part in text.replace(";", ",").split(","):
            name, equals, value = (s.strip() for s in part.partition("="))
            if not equals:
                raise ReceiptPlanError(f"{part.strip()!r} is not status=share")
            if name not in names:
                raise ReceiptPlanError(
                    f"unknown status {name!r} (delivered, undelivered, expired or none)")
            if name in shares:
                raise ReceiptPlanError(f"{name} is named twice")
            try:
                shares[name] = float(value)
            except ValueError:
                raise ReceiptPlanError(f"the share of {name} is not a number: {value!r}") from None
        return cls(**{name: shares.get(name, 0.0) for name in names})

    def __str__(self) -> str:
        return ",".join(f"{name}={share:g}" for name, share in self._shares() if share)

    def draw(self, chance: random.Random) -> Reported | None:
        """The fate of one accepted send: its receipt's status, None for never reported."""
        outcomes = [(self._outcome(name), share) for name, share in self._shares() if share]
        r, reached = chance.random(), 0.0
        for outcome, share in outcomes:
            reached += share
            if r < reached:
                return outcome
        return outcomes[-1][0]  # the shares added up to a hair under 1

    def _shares(self) -> list[tuple[str, float]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]

    @staticmethod
    def _outcome(name: str) -> Reported | None:
        return None if name == NEVER else Reported(name)


@dataclass
class ReceiptTally:
    """What a simulator's receipts came to, for /stats, /receipts and tests."""

    reported: Counter[Reported] = field(default_factory=Counter)  # acknowledged, by status
    by_message: dict[str, Reported] = field(default_factory=dict)  # acknowledged
    never: list[str] = field(default_factory=list)  # message ids drawn "none"
    pending: int = 0  # owed, not acknowledged yet
    refused: int = 0  # dropped: the gateway called the batch malformed (400)

    def stats(self) -> dict[str, int]:
        counts = {status.value: self.reported[status] for status in Reported}
        return {**counts, NEVER: len(self.never), "pending": self.pending,
                "refused": self.refused}

    def listing(self) -> dict[str, object]:
        return {"reported": {mid: status.value for mid, status in self.by_message.items()},
                NEVER: list(self.never)}


@dataclass(frozen=True, slots=True)
class Owed:
    """A receipt a simulator owes the gateway, due at `due` on the reporter's clock."""

    message_id: str
    reported: Reported
    due: float

    @property
    def error_code(self) -> str:
        return ERROR_CODES[self.reported]


class Answer(enum.Enum):
    ACKNOWLEDGED = "acknowledged"  # recorded: never sent again
    REFUSED = "refused"  # malformed, the gateway says: sending it again would not help


# Hands one batch over, `at` being when it was made (the same on every try); raises, or
# returns None, when the gateway cannot take it now: the same batch goes again.
Report = Callable[[Sequence[Owed], datetime], Awaitable[Answer | None]]

MAX_BATCH = 1000
LINGER_S = 0.05  # how long a due receipt waits for others to share its batch
RETRY = Backoff(first=0.1, ceiling=2.0)


class ReceiptReporter:
    """The receipts a simulator owes, handed over by `report` once due, in batches.

    One task per reporter, started by the first receipt owed in the running loop;
    a batch is tried until it is acknowledged (or refused), so none is lost while
    the simulator runs, and none is sent twice once acknowledged. The delay being
    the same for all, receipts fall due in the order they are owed.
    """

    def __init__(self, report: Report, delay_ms: float, *, batch: int = MAX_BATCH,
                 linger_s: float = LINGER_S, retry: Backoff = RETRY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tally = ReceiptTally()
        self._report, self._delay_s, self._batch = report, delay_ms / 1000, batch
        self._linger_s, self._retry, self._clock = linger_s, retry, clock
        self._owed: deque[Owed] = deque()
        self._task: asyncio.Task[None] | None = None
        self._owing: asyncio.Event | None = None  # made with the task, in its loop

    def owe(self, message_id: str, fate: Reported | None, arrived: float) -> None:
        """Owe the receipt of a send that arrived at `arrived` (the reporter's clock)."""
        if fate is None:
            self.tally.never.append(message_id)
            return
        self._owed.append(Owed(message_id, fate, arrived + self._delay_s))
        self.tally.pending += 1
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._owing = asyncio.Event()
            self._task = loop.create_task(self._run())
        assert self._owing is not None
        self._owing.set()

    async def close(self) -> None:
        """Stop reporting; what was not acknowledged yet is dropped with the simulator."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._hand_over(await self._next_batch())

    async def _next_batch(self) -> list[Owed]:
        assert self._owing is not None
        while not self._owed:
            self._owing.clear()
            await self._owing.wait()
        await asyncio.sleep(max(0.0, self._owed[0].due + self._linger_s - self._clock()))
        now, batch = self._clock(), list[Owed]()
        while self._owed and self._owed[0].due <= now and len(batch) < self._batch:
            batch.append(self._owed.popleft())
        return batch

    async def _hand_over(self, batch: list[Owed]) -> None:
        at, failures = datetime.now(UTC), 0
        while True:
            try:
                answer = await self._report(batch, at)
            except Exception as exc:  # any failure: the gateway did not record them
                log.warning("%d receipt(s) not taken: %s: %s", len(batch),
                            type(exc).__name__, exc)
                answer = None
            if answer is not None:
                break
            failures += 1
            await asyncio.sleep(self._retry.delay(failures))
        self.tally.pending -= len(batch)
        if answer is Answer.REFUSED:
            self.tally.refused += len(batch)
            return
        for owed in batch:
            self.tally.reported[owed.reported] += 1
            self.tally.by_message[owed.message_id] = owed.reported


def add_receipt_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the simulator's seed and receipts, shared with `smsgw operator-sim`."""
    parser.add_argument("--seed", type=int, default=None,
                        help="seed its chance (failures, receipts): a run can be repeated")
    parser.add_argument("--receipt-url", default=None, metavar="URL",
                        help="POST receipts there (the gateway's /operators/NAME/receipts); "
                             "none without it")
    parser.add_argument("--receipt-token", default="", metavar="SECRET",
                        help="sent as Authorization: Bearer SECRET")
    parser.add_argument("--receipts", default=None, metavar="PLAN",
                        help="shares of accepted sends, e.g. delivered=0.85,undelivered=0.08,"
                             "expired=0.02,none=0.05 (none: never reported; default all "
                             "delivered)")
    parser.add_argument("--receipt-delay-ms", type=float, default=0.0, metavar="MS",
                        help="a receipt is due this long after its send arrived")


def receipt_options(args: argparse.Namespace) -> dict[str, Any]:
    """`run_simulator`'s keywords from the options `add_receipt_arguments` added."""
    if args.receipts is not None and not args.receipt_url:
        raise ReceiptPlanError("--receipts needs --receipt-url (receipts are off without it)")
    return {"seed": args.seed, "receipt_url": args.receipt_url,
            "receipt_token": args.receipt_token, "receipts": args.receipts,
            "receipt_delay_ms": args.receipt_delay_ms}

