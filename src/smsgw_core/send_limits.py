"""A customer's send limit: recipients per second with a burst, as a token bucket.

A bucket holds up to `burst` recipients' worth and refills at `per_s`. A send
of n recipients needs min(n, burst) in the bucket and takes n: a send larger
than the burst still goes once the bucket is full, and leaves the bucket in
debt, so the customer's long-run rate stays `per_s` whatever its sends' sizes.
When it does not go, the bucket says how long until it would.

Not a library's limiter: `limits` counts hits in windows (no burst refilling
at a rate, no debt for a large send) and `aiolimiter` makes the caller wait,
where a gateway must refuse at once and say when to come back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RATE = re.compile(r"^\s*(\d+)\s*/\s*s\s*(?:,\s*burst\s*=\s*(\d+)\s*)?$")
MAX_RATE = 1_000_000  # recipients per second: far past any operator's


@dataclass(frozen=True, slots=True)
class Rate:
    per_s: int
    burst: int

    def __post_init__(self) -> None:
        if not 1 <= self.per_s <= MAX_RATE or not 1 <= self.burst <= MAX_RATE * 3600:
            raise ValueError(f"a rate is 1-{MAX_RATE}/s with a burst of at least 1")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`200/s,burst=1000`, or `200/s` (a burst of one second's worth)."""
        match = _RATE.match(text)
        if match is None:
            raise ValueError("expected RATE/s or RATE/s,burst=N, e.g. 200/s,burst=1000")
        per_s = int(match[1])
        return cls(per_s, int(match[2]) if match[2] else per_s)

    def at(self, per_s: int) -> Rate:
        """This rate's burst, in seconds of it, at another rate: a customer's own
        limit keeps the default's burst window."""
        return Rate(per_s, max(1, round(self.burst * per_s / self.per_s)))

    def __str__(self) -> str:
        return f"{self.per_s}/s,burst={self.burst}"


ONE_SECOND_BURST = Rate(1, 1)  # the burst window of a customer's own limit with no default


class Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, rate: Rate, now: float) -> None:
        self.tokens = float(rate.burst)  # a new customer starts with its whole burst
        self.at = now

    def take(self, rate: Rate, n: int, now: float) -> float:
        """Take n recipients' worth: 0.0 when taken, else the seconds until they could be."""
        self.tokens = min(float(rate.burst), self.tokens + max(0.0, now - self.at) * rate.per_s)
        self.at = now
        need = min(n, rate.burst)
        if self.tokens >= need:
            self.tokens -= n
            return 0.0
        return (need - self.tokens) / rate.per_s

    def give_back(self, rate: Rate, n: int) -> None:
        """What a send that was not accepted after all took."""
        self.tokens = min(float(rate.burst), self.tokens + n)
