"""Customers: whom a balance, a key and a send limit belong to.

A customer's id is its user_id everywhere (the Go service's accounts have no
other); a customer row holds what the seed routes never had, its name and its
own send limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MAX_CUSTOMER_NAME = 255


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    name: str
    created_at: datetime
    max_recipients_per_s: int | None = None  # None: the gateway's default
