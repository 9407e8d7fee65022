"""What a RabbitMQ message carries: the delivery (smsgw_adapters.codec), its trace
headers (read by smsgw_adapters.trace_carrier), and the reasons a dead-lettered one holds."""

from __future__ import annotations

from collections.abc import Sequence

from smsgw_adapters import codec
from smsgw_core.outbox import DeliveryJob, UndecodablePayload

CONTENT_TYPE = "application/json"
# Headers a dead-lettered message carries, so whoever inspects the queue sees why.
DEAD_LETTER_REASON = "x-smsgw-error"
DEAD_LETTER_SOURCE = "x-smsgw-source-queue"


class PoisonMessage(Exception):
    """A message no worker can ever handle: retrying it cannot help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_bundle(deliveries: Sequence[DeliveryJob]) -> bytes:
    return codec.encode_many(deliveries)


def decode(body: bytes) -> list[DeliveryJob]:
    """The deliveries a message carries: one, or a bundle of several."""
    try:
        return codec.decode_many(body)
    except UndecodablePayload as exc:
        raise PoisonMessage(str(exc)) from exc
