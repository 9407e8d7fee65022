"""An in-process simulated operator, for embedded mode, demos and tests.

`fail_rate` of the sends fail transiently (as a timeout or 5xx would); numbers
starting with `reject_prefix` are refused permanently (as an invalid number is).
A resend of a reference it took gets the same message id, as the protocol asks
of an operator. With a receipt plan (`receipts`) and a sink, it reports what
became of each send it took, `receipt_delay_ms` after the send arrived
(receipt_plan.py).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta

from smsgw_adapters.operators.receipt_plan import (
    Answer,
    Owed,
    ReceiptPlan,
    ReceiptPlanError,
    ReceiptReporter,
    ReceiptTally,
)
from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms
from smsgw_core.receipts import OperatorMessage, Receipt

if TYPE_CHECKING:
    from smsgw_core.ports import ReceiptSink

FailRate = Annotated[float, Meta(ge=0, le=1)]
Latency = Annotated[float, Meta(ge=0)]
REMEMBERED = 200_000  # references whose message id a resend gets back (the newest)


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
    receipts: str | None = None  # a receipt plan; None: no receipts
    receipt_delay_ms: Latency = 0.0

    def __post_init__(self) -> None:
        for value, kind, problem in (
            (self.fail_rate, FailRate, "fail_rate must be between 0 and 1"),
            (self.latency_ms, Latency, "latency_ms must not be negative"),
            (self.receipt_delay_ms, Latency, "receipt_delay_ms must not be negative"),
        ):
            try:
                msgspec.convert(value, kind)
            except msgspec.ValidationError:
                raise BehaviourError(problem) from None
        self.receipt_plan  # noqa: B018 (raises BehaviourError)

    @property
    def receipt_plan(self) -> ReceiptPlan | None:
        if self.receipts is None:
            return None
        try:
            return ReceiptPlan.parse(self.receipts)
        except ReceiptPlanError as exc:
            raise BehaviourError(f"receipts: {exc}") from None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Behaviour:
        """The behaviour a `sim://?fail_rate=…&latency_ms=…&reject_prefix=…&seed=…
        &receipts=…&receipt_delay_ms=…` URL asks for."""
        unknown = set(params) - set(cls.__struct_fields__)
        if unknown:
            raise BehaviourError(f"unknown parameter(s) {', '.join(sorted(unknown))}")
        try:
            numbers: dict[str, Any] = {
                name: read(params[name])
                for name, read in (("fail_rate", float), ("latency_ms", float), ("seed", int),
                                   ("receipt_delay_ms", float))
                if name in params
            }
        except ValueError:
            raise BehaviourError("parameters must be numbers") from None
        return cls(reject_prefix=params.get("reject_prefix", ""),
                   receipts=params.get("receipts"), **numbers)


class SimulatedOperator:
    def __init__(
        self,
        name: str,
        *,
        fail_rate: float = 0.0,
        latency_ms: float = 0.0,
        reject_prefix: str = "",
        seed: int | None = None,
        receipts: str | None = None,
        receipt_delay_ms: float = 0.0,
        sink: ReceiptSink | None = None,
    ) -> None:
        behaviour = Behaviour(fail_rate=fail_rate, latency_ms=latency_ms, receipts=receipts,
                              receipt_delay_ms=receipt_delay_ms)  # raises BehaviourError
        self._name = name
        self.fail_rate = fail_rate
        self.latency_ms = latency_ms
        self.reject_prefix = reject_prefix
        self._random = random.Random(seed)
        self._message_ids: OrderedDict[str, str] = OrderedDict()  # reference -> message id
        self.accepted = 0  # references taken, each once
        self.duplicates = 0  # resends of a reference taken before
        self._plan = behaviour.receipt_plan if sink is not None else None
        self._sink = sink
        self._reporter = ReceiptReporter(self._hand_over, receipt_delay_ms)

    @classmethod
    def behaving(cls, name: str, behaviour: Behaviour, *,
                 sink: ReceiptSink | None = None) -> SimulatedOperator:
        return cls(name, **msgspec.structs.asdict(behaviour), sink=sink)

    @property
    def name(self) -> str:
        return self._name

    @property
    def tally(self) -> ReceiptTally:
        """Its receipts: acknowledged by status and by message id, never reported, pending."""
        return self._reporter.tally

    async def send(self, sms: OutgoingSms) -> str:
        # Taken (or not) when it arrives, answered after the latency: a receipt due
        # sooner than the answer reaches the gateway first, as it can from an operator.
        taken = self._take(sms, time.monotonic())
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if isinstance(taken, OperatorError):
            raise taken
        return taken

    async def close(self) -> None:
        """Stop reporting receipts (those not acknowledged yet are dropped)."""
        await self._reporter.close()

    def _take(self, sms: OutgoingSms, arrived: float) -> str | OperatorError:
        if self.reject_prefix and sms.recipient.startswith(self.reject_prefix):
            return OperatorError(self._name, ErrorClass.PERMANENT, "invalid number")
        if self._random.random() < self.fail_rate:
            return OperatorError(self._name, ErrorClass.TRANSIENT, "simulated outage")
        known = self._message_ids.get(sms.reference)
        if known is not None:  # a resend (the gateway crashed, or timed out): no second receipt
            self.duplicates += 1
            return known
        message_id = self._message_ids[sms.reference] = f"{self._name}-{uuid.uuid4().hex[:16]}"
        if len(self._message_ids) > REMEMBERED:
            self._message_ids.popitem(last=False)
        self.accepted += 1
        if self._plan is not None:
            self._reporter.owe(message_id, self._plan.draw(self._random), arrived)
        return message_id

    async def _hand_over(self, batch: Sequence[Owed], at: datetime) -> Answer:
        assert self._sink is not None  # owed only with a sink
        await self._sink.take([
            Receipt(OperatorMessage(self._name, owed.message_id), owed.reported,
                    owed.error_code, done_at=at, received_at=at)
            for owed in batch
        ])
        return Answer.ACKNOWLEDGED
