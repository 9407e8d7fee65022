"""An in-process simulated operator, for embedded mode, demos and tests.

`fail_rate` of the sends fail transiently (as a timeout or 5xx would); numbers
starting with `reject_prefix` are refused permanently (as an invalid number is).
"""

from __future__ import annotations

import asyncio
import random
import uuid

from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms


class SimulatedOperator:
    def __init__(
        self,
        name: str,
        *,
        fail_rate: float = 0.0,
        latency_ms: float = 0.0,
        reject_prefix: str = "",
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        self._name = name
        self.fail_rate = fail_rate
        self.latency_ms = latency_ms
        self.reject_prefix = reject_prefix
        self._random = random.Random(seed)
        self.accepted = 0

    @property
    def name(self) -> str:
        return self._name

    async def send(self, sms: OutgoingSms) -> str:
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if self.reject_prefix and sms.recipient.startswith(self.reject_prefix):
            raise OperatorError(self._name, ErrorClass.PERMANENT, "invalid number")
        if self._random.random() < self.fail_rate:
            raise OperatorError(self._name, ErrorClass.TRANSIENT, "simulated outage")
        self.accepted += 1
        return f"{self._name}-{uuid.uuid4().hex[:16]}"
