"""The embedded message bus: an in-process queue, express ahead of normal, and its consumer."""

from smsgw_adapters.inprocess.bus import LANES, BusObserver, InProcessBus
from smsgw_adapters.inprocess.consumer import InProcessConsumer

__all__ = ["LANES", "BusObserver", "InProcessBus", "InProcessConsumer"]
