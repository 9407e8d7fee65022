"""What every bus adapter offers beyond the core's MessageBus port, and its consumer.

The in-process bus and RabbitMQ both satisfy these, so the composition root
picks one by configuration and wires the rest without asking which it got.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from smsgw_core.messages import MessageType
from smsgw_core.outbox import DeliveryJob
from smsgw_core.ports import MessageBus

DeliveryHandler = Callable[[DeliveryJob], Awaitable[object]]


class Bus(MessageBus, Protocol):
    async def start(self) -> None:
        """Connect, and declare what the bus needs (idempotent)."""

    async def close(self) -> None: ...

    def is_connected(self) -> bool:
        """False while the bus cannot take a publish (its connection is being re-established)."""

    async def backlog(self) -> dict[MessageType, int]:
        """Deliveries published and not yet handed to a consumer, per lane (RabbitMQ:
        at most; it counts messages, each a bundle of deliveries)."""


class Consumer(Protocol):
    """Hands each delivery of a bus to a handler, on a pool of workers per lane."""

    async def start(self) -> None: ...

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a grace period)
        """Take nothing new; give in-flight handlers `timeout` seconds, then cancel them."""

    def is_connected(self) -> bool: ...
