"""The embedded message bus: an in-process queue, express ahead of normal."""

from smsgw_adapters.inprocess.bus import InProcessBus

__all__ = ["InProcessBus"]
