"""The embedded message bus: an in-process queue, express ahead of normal."""

from smsgw_adapters.inprocess.bus import LANES, BusObserver, InProcessBus

__all__ = ["LANES", "BusObserver", "InProcessBus"]
