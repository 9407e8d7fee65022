"""How long an accepted SMS may take, and how long a recipient waits between tries.

- Validity (SMSGW_MESSAGE_TTL_S, 24 h by default), counted from acceptance:
  past it, every recipient still unfinished is failed as "expired" and
  refunded once, whatever held it up (a broker outage, operators down).
- Lease (SMSGW_DELIVERY_LEASE_S): how long a claimed recipient (SENDING)
  belongs to the delivery that claimed it. Past it, that delivery is taken to
  be lost with its worker, and the recipient may be claimed (and sent) again.
- Deferral: when no operator can take a recipient now (every one down, timing
  out, or behind an open circuit), it goes back to PENDING and is tried again
  after a wait that grows with the SMS's age, capped, and never past validity.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class FailureReason(enum.Enum):
    """Why a recipient FAILED, as customers read it in their refund's description.

    The operators' own error texts (hosts, HTTP bodies) go to the logs only.
    """

    REJECTED = "rejected"  # an operator refused the number or the text: permanent
    EXPIRED = "expired"  # the validity ran out before any operator took it


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    validity: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(seconds=60)
    retry_base: timedelta = timedelta(seconds=1)
    retry_cap: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        if min(self.validity, self.lease, self.retry_base, self.retry_cap) <= timedelta(0):
            raise ValueError("validity, lease and retry waits must be positive")

    def expired(self, accepted_at: datetime | None, now: datetime) -> bool:
        """Past validity. An SMS of unknown age (an old payload) never expires here."""
        return accepted_at is not None and now >= accepted_at + self.validity

    def stale_before(self, now: datetime) -> datetime:
        """SENDING rows last moved before this have outlived their lease."""
        return now - self.lease

    def retry_at(self, accepted_at: datetime | None, now: datetime) -> datetime:
        """When a deferred recipient is tried again: a quarter of its age, within
        [retry_base, retry_cap], and not after its validity ends (it expires then)."""
        age = now - accepted_at if accepted_at is not None else timedelta(0)
        wait = min(self.retry_cap, max(self.retry_base, age / 4))
        at = now + wait
        if accepted_at is not None:
            at = min(at, accepted_at + self.validity)
        return at
