"""smsgw_core: the prepaid SMS gateway's domain and use cases.

Standard library only, no I/O: adapters implement the ports in
:mod:`smsgw_core.ports`, and :mod:`smsgw_core.testing` implements them in memory
(for tests and embedders; :mod:`smsgw_core.system` holds the real clock and ids).
"""

import logging

# A library's loggers stay silent until the embedding application configures
# logging (the standard library's advice): no stray lines on an embedder's stderr.
logging.getLogger("smsgw").addHandler(logging.NullHandler())
