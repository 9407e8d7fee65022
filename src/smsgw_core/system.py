"""The real clock and id source: what production wires behind the Clock and Ids ports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)



class UuidIds:
    def new_id(self) -> str:
        return str(uuid.uuid4())
