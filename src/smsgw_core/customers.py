"""Customers: whom a balance, a key and a send limit belong to.

A customer's id is `customer_id` in Python everywhere; the Go service's schema
and seed routes call it `user_id` (its columns and JSON keys keep that name; its
accounts have no other id). A customer row holds what the seed routes never
had, its name and its own send limit.
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
