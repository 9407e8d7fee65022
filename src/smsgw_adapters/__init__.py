"""smsgw_adapters: the core's ports implemented with real technology.

One sub-package per technology (``sql``, ...); each depends on :mod:`smsgw_core`
and never the other way round.
"""
