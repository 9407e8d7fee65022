"""The RabbitMQ bus (FastStream over aio-pika): publisher, consumer and their topology."""

from smsgw_adapters.rabbit.bus import PublishFailed, RabbitBus
from smsgw_adapters.rabbit.codec import DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, PoisonMessage
from smsgw_adapters.rabbit.consumer import RabbitConsumer
from smsgw_adapters.rabbit.observer import NoQueueObserver, QueueObserver
from smsgw_adapters.rabbit.topology import RabbitTopology

__all__ = [
    "DEAD_LETTER_REASON",
    "DEAD_LETTER_SOURCE",
    "NoQueueObserver",
    "PoisonMessage",
    "PublishFailed",
    "QueueObserver",
    "RabbitBus",
    "RabbitConsumer",
    "RabbitTopology",
]
