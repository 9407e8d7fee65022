"""An in-process simulated operator, for embedded mode, demos and tests.

`fail_rate` of the sends fail transiently (as a timeout or 5xx would); numbers
starting with `reject_prefix` are refused permanently (as an invalid number is).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms

FailRate = Annotated[float, Meta(ge=0, le=1)]
Latency = Annotated[float, Meta(ge=0)]


class BehaviourError(ValueError):
    """A simulated operator's behaviour it cannot have; the message says which part."""


class Behaviour(msgspec.Struct, frozen=True, kw_only=True):
    """How a simulated operator behaves, in process (sim://?…) or over HTTP (operator-sim).

    Every Behaviour is valid: constructing one out of range raises BehaviourError,
    so the gateway's settings, both simulators and their control call check alike.
    """

    fail_rate: FailRate = 0.0
    latency_ms: Latency = 0.0
    reject_prefix: str = ""
    seed: int | None = None

    def __post_init__(self) -> None:
        for value, kind, problem in (
            (self.fail_rate, FailRate, "fail_rate must be between 0 and 1"),
            (self.latency_ms, Latency, "latency_ms must not be negative"),
        ):
            try:
                msgspec.convert(value, kind)
            except msgspec.ValidationError:
                raise BehaviourError(problem) from None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Behaviour:
        """The behaviour a `sim://?fail_rate=…&latency_ms=…&reject_prefix=…&seed=…` URL asks for."""
        unknown = set(params) - set(cls.__struct_fields__)
        if unknown:
            raise BehaviourError(f"unknown parameter(s) {', '.join(sorted(unknown))}")
        try:
            numbers: dict[str, Any] = {
                name: read(params[name])
                for name, read in (("fail_rate", float), ("latency_ms", float), ("seed", int))
                if name in params
            }
        except ValueError:
            raise BehaviourError("parameters must be numbers") from None
        return cls(reject_prefix=params.get("reject_prefix", ""), **numbers)


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
        Behaviour(fail_rate=fail_rate, latency_ms=latency_ms)  # raises BehaviourError
        self._name = name
        self.fail_rate = fail_rate
        self.latency_ms = latency_ms
        self.reject_prefix = reject_prefix
        self._random = random.Random(seed)
        self.accepted = 0

    @classmethod
    def behaving(cls, name: str, behaviour: Behaviour) -> SimulatedOperator:
        return cls(name, **msgspec.structs.asdict(behaviour))

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
