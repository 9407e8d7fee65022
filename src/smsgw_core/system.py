"""The real clock, id source and random tokens: what production wires behind the
Clock, IdGenerator and Tokens ports."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class UuidIds:
    def new_id(self) -> str:
        return str(uuid.uuid4())


class SystemTokens:
    """From the operating system's CSPRNG (the secrets module)."""

    def hex(self, nbytes: int) -> str:
        return secrets.token_hex(nbytes)

    def urlsafe(self, nbytes: int) -> str:
        return secrets.token_urlsafe(nbytes)
