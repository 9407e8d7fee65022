"""The embedded message bus: an in-process queue, express ahead of normal, and its consumer."""

from smsgw_adapters.inprocess.bus import QUEUES, BusObserver, InProcessBus
from smsgw_adapters.inprocess.consumer import InProcessConsumer

__all__ = ["QUEUES", "BusObserver", "InProcessBus", "InProcessConsumer"]
