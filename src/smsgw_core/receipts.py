r"""Delivery receipts: what an operator later says became of a message it took.

    DONE (the operator took it; its message id kept) -> DELIVERED
                                                     -> UNDELIVERED
                                                     -> EXPIRED

A receipt is a fact from outside and arrives in any order: before the
operator's answer is recorded (SMPP sends both on one session, the receipt
can win the race), twice, late, or for a message id nothing knows. The rules:

- the first final receipt for a message id wins; any later one changes
  nothing and is counted as a duplicate (a status never moves backwards),
  also while the first is still kept;
- a receipt that matches no recipient yet is kept, and applied when the
  operator's answer with that message id is recorded; kept past the orphan
  time (SMSGW_RECEIPT_ORPHAN_TTL_S), it is dropped and counted as an orphan;
- an UNDELIVERED or EXPIRED recipient is refunded only where the gateway is
  set to (SMSGW_REFUND_UNDELIVERED: the operator has charged us either way),
  and at most once, as every refund is.

`ReceiptDesk` is the rule over one store of recipients and kept receipts,
pure and in memory: the reference the property tests hold every storage of
receipts to.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from smsgw_core.messages import SmsStatus

DEFAULT_ORPHAN_TTL = timedelta(hours=1)


class Reported(enum.Enum):
    """What a receipt says became of the message (the operator protocol's words)."""

    DELIVERED = "delivered"  # reached the handset
    UNDELIVERED = "undelivered"  # the operator or the handset refused or lost it
    EXPIRED = "expired"  # the operator's own validity ran out before it reached the handset

    @property
    def refundable(self) -> bool:
        """Whether, where the gateway refunds undelivered messages, this one is refunded."""
        return self is not Reported.DELIVERED

    @property
    def status(self) -> SmsStatus:
        """The recipient's final status this receipt moves it to."""
        return SmsStatus(self.value.upper())


@dataclass(frozen=True, slots=True)
class ReceiptPolicy:
    """What the gateway does with receipts: the settings behind them."""

    refund_undelivered: bool = False  # SMSGW_REFUND_UNDELIVERED
    orphan_ttl: timedelta = DEFAULT_ORPHAN_TTL  # SMSGW_RECEIPT_ORPHAN_TTL_S

    def refunds(self, reported: Reported) -> bool:
        return self.refund_undelivered and reported.refundable


@dataclass(frozen=True, slots=True)
class OperatorMessage:
    """An operator's own id for a message it took: what a receipt names."""

    operator: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Receipt:
    about: OperatorMessage
    reported: Reported
    error_code: str  # the operator's, as it sent it ("" when none)
    done_at: datetime | None  # when the operator says it happened, if it says
    received_at: datetime  # when the gateway got it


@dataclass(frozen=True, slots=True)
class Tracked:
    """A recipient an operator took (DONE), as far as receipts are concerned."""

    sms_identifier: str
    recipient: str
    message: OperatorMessage
    reported: Reported | None = None  # None: no final receipt yet
    error_code: str = ""
    done_at: datetime | None = None

    def after(self, receipt: Receipt) -> Tracked | None:
        """This recipient with `receipt` applied; None when it changes nothing (the
        recipient has its final receipt already: the first one wins)."""
        if self.reported is not None:
            return None
        return replace(self, reported=receipt.reported, error_code=receipt.error_code,
                       done_at=receipt.done_at or receipt.received_at)


class Verdict(enum.Enum):
    APPLIED = "applied"  # moved its recipient to a final status
    DUPLICATE = "duplicate"  # its recipient had a final status already: nothing changed
    KEPT = "kept"  # no recipient has its message id yet: kept for the answer to come


@dataclass(frozen=True, slots=True)
class Applied:
    """A recipient moved by a receipt, and whether that move refunds it."""

    recipient: Tracked
    refund: bool


@dataclass
class ReceiptDesk:
    """The receipt rule over an in-memory store: recipients by their operator's
    message id, and the receipts kept for ids no recipient has yet (oldest first)."""

    refund_undelivered: bool = False  # SMSGW_REFUND_UNDELIVERED
    orphan_ttl: timedelta = DEFAULT_ORPHAN_TTL  # SMSGW_RECEIPT_ORPHAN_TTL_S
    tracked: dict[OperatorMessage, Tracked] = field(default_factory=dict)
    kept: OrderedDict[OperatorMessage, list[Receipt]] = field(default_factory=OrderedDict)
    duplicates: int = 0  # receipts for a recipient that had its final one: a counter
    orphans: int = 0  # receipts dropped after the orphan time: a counter

    def receive(self, receipt: Receipt) -> tuple[Verdict, Applied | None]:
        """Apply `receipt` to its recipient, or keep it until one has its id."""
        current = self.tracked.get(receipt.about)
        if current is None:
            if receipt.about in self.kept:
                # The first receipt for an id wins while it is kept too: a storage
                # keeps one per id, and drops it (with its repeats) as one orphan.
                self.duplicates += 1
                return Verdict.DUPLICATE, None
            self.kept[receipt.about] = [receipt]
            return Verdict.KEPT, None
        return self._apply(current, receipt)

    def answered(self, recipient: Tracked) -> list[Applied]:
        """The operator's answer recorded: `recipient` is DONE with its message id;
        the receipts kept for that id are applied now, in the order they came."""
        # Recorded once: an answer recorded again (a redelivered outcome) keeps
        # whatever its receipts have made of the recipient since.
        self.tracked.setdefault(recipient.message, recipient)
        moved = []
        for receipt in self.kept.pop(recipient.message, []):
            _, applied = self._apply(self.tracked[recipient.message], receipt)
            if applied is not None:
                moved.append(applied)
        return moved

    def expire(self, now: datetime) -> list[Receipt]:
        """Drop the receipts kept past the orphan time: they will find no recipient."""
        gone = [receipt for receipt in self._kept() if now - receipt.received_at > self.orphan_ttl]
        for receipt in gone:
            waiting = self.kept[receipt.about]
            waiting.remove(receipt)
            if not waiting:
                del self.kept[receipt.about]
        self.orphans += len(gone)
        return gone

    def _apply(self, current: Tracked, receipt: Receipt) -> tuple[Verdict, Applied | None]:
        moved = current.after(receipt)
        if moved is None:
            self.duplicates += 1
            return Verdict.DUPLICATE, None
        self.tracked[current.message] = moved
        return Verdict.APPLIED, Applied(moved, self.refunds(receipt.reported))

    def refunds(self, reported: Reported) -> bool:
        return self.refund_undelivered and reported.refundable

    def _kept(self) -> Iterator[Receipt]:
        for receipts in list(self.kept.values()):
            yield from list(receipts)
