r"""The per-recipient message and its state machine.

    PENDING -> SENDING -> DONE -> DELIVERED | UNDELIVERED | EXPIRED  (a receipt)
       ^          |   \-> FAILED
       +----------+  (deferred: no operator could take it now)

DONE and FAILED are terminal: the delivery is over (an operator took it, or
none ever will). After DONE only an operator's delivery receipt moves a
recipient, once, to one of the three final statuses (receipts.py); FAILED and
those three are final: nothing moves them again. SENDING -> SENDING is allowed: it is how a
message is claimed again after a crash left it mid-send past its lease (the
earlier attempt's outcome is unknown, so delivery to the operator is
at-least-once). SENDING -> PENDING is a deferral: every operator was
unavailable (down, timing out, circuit open), so the recipient waits and is
tried again later, until its SMS's validity runs out.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from smsgw_core.errors import InvalidRequest, InvalidTransition

MAX_RECIPIENTS = 1000
# A text's limit is in characters, as Twilio's: a JSON Schema can state it, and
# a client can check it, where a segment count depends on the encoding. The
# worst 1600 characters (all outside the BMP) make 49 UCS-2 segments.
MAX_TEXT_LENGTH = 1600
# Exactly this, with nothing around it: no spaces, no separators.
PHONE_NUMBER = r"\+?[0-9]{7,15}"
_PHONE = re.compile(PHONE_NUMBER)


class MessageType(enum.Enum):
    NORMAL = "normal"
    EXPRESS = "express"

    @property
    def priority(self) -> int:
        """Outbox priority, as in the original service: express 10, normal 0."""
        return 10 if self is MessageType.EXPRESS else 0


class SmsStatus(enum.Enum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    DONE = "DONE"
    FAILED = "FAILED"
    DELIVERED = "DELIVERED"  # a receipt: it reached the handset
    UNDELIVERED = "UNDELIVERED"  # a receipt: the operator or the handset refused or lost it
    EXPIRED = "EXPIRED"  # a receipt: the operator's own validity ran out first

    @property
    def terminal(self) -> bool:
        """The delivery is over: no operator will be called for it again."""
        return self not in (SmsStatus.PENDING, SmsStatus.SENDING)

    @property
    def final(self) -> bool:
        """Nothing moves it any more (DONE still waits for a receipt that may come)."""
        return self.terminal and self is not SmsStatus.DONE

    @classmethod
    def parse(cls, value: str) -> SmsStatus:
        try:
            return cls(value.upper())
        except ValueError:
            allowed = ", ".join(s.value.lower() for s in cls)
            raise InvalidRequest("status", f"must be one of {allowed}") from None


ALLOWED_TRANSITIONS: dict[SmsStatus, frozenset[SmsStatus]] = {
    SmsStatus.PENDING: frozenset({SmsStatus.SENDING}),
    SmsStatus.SENDING: frozenset(
        {SmsStatus.PENDING, SmsStatus.SENDING, SmsStatus.DONE, SmsStatus.FAILED}
    ),
    SmsStatus.DONE: frozenset({SmsStatus.DELIVERED, SmsStatus.UNDELIVERED, SmsStatus.EXPIRED}),
    SmsStatus.FAILED: frozenset(),
    SmsStatus.DELIVERED: frozenset(),
    SmsStatus.UNDELIVERED: frozenset(),
    SmsStatus.EXPIRED: frozenset(),
}


def check_transition(current: SmsStatus, target: SmsStatus) -> None:
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(current.value, target.value)


@dataclass(frozen=True, slots=True)
class RecipientMessage:
    """One recipient's copy of an accepted SMS: a row of the history."""

    sms_identifier: str
    customer_id: int
    recipient: str
    type: MessageType
    status: SmsStatus
    provider: str
    created_at: datetime
    updated_at: datetime
    message_id: str = ""  # the operator's id for it, once DONE
    error_code: str = ""  # from the operator's receipt, when it gave one
    delivered_at: datetime | None = None  # when the receipt says it was settled (any final one)

    def moved_to(
        self, target: SmsStatus, at: datetime, provider: str = "", message_id: str = "",
    ) -> RecipientMessage:
        check_transition(self.status, target)
        return replace(self, status=target, updated_at=at, provider=provider or self.provider,
                       message_id=message_id or self.message_id)


def normalize_recipients(recipients: Iterable[str]) -> list[str]:
    """Distinct recipients in request order; every invalid one is named at once.

    Numbers are kept as sent (local or international format): the gateway cannot
    know a local number's country, so only exact duplicates are merged.
    """
    seen: dict[str, None] = {}
    invalid: list[str] = []
    for number in recipients:
        if not _PHONE.fullmatch(number):
            invalid.append(number)
        else:
            seen.setdefault(number, None)
    if invalid:
        shown = ", ".join(repr(n) for n in invalid[:20])
        more = f" and {len(invalid) - 20} more" if len(invalid) > 20 else ""
        raise InvalidRequest(
            "recipients",
            f"not phone numbers (7-15 digits, optional leading +): {shown}{more}",
        )
    if not seen:
        raise InvalidRequest("recipients", "must list at least one phone number")
    if len(seen) > MAX_RECIPIENTS:
        raise InvalidRequest("recipients", f"at most {MAX_RECIPIENTS} distinct numbers")
    return list(seen)
