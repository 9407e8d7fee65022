"""In-memory implementations of every port: for unit tests and for embedders.

They keep the adapters' promises (the contract tests run against them too):
a unit of work is serialized and all-or-nothing, and the repositories raise the
same domain errors as the SQL ones. Production code never imports this package
(an import-linter contract says so); the real clock and id source are in
:mod:`smsgw_core.system`.
"""

from smsgw_core.testing.breaker import CountingCircuitBreaker
from smsgw_core.testing.bus import RecordingBus
from smsgw_core.testing.capacity import InMemoryCapacity
from smsgw_core.testing.clock import FakeClock, FakeTicks, SequentialIds
from smsgw_core.testing.operators import Behaviour, ScriptedOperator, always
from smsgw_core.testing.repositories import (
    InMemoryIdempotency,
    InMemoryLedger,
    InMemoryMessages,
    InMemoryOutbox,
)
from smsgw_core.testing.state import InMemoryState
from smsgw_core.testing.tenancy import InMemoryCustomers, InMemoryKeys
from smsgw_core.testing.uow import InMemoryDatabase, InMemoryUnitOfWork

__all__ = [
    "Behaviour",
    "CountingCircuitBreaker",
    "FakeClock",
    "FakeTicks",
    "InMemoryCapacity",
    "InMemoryCustomers",
    "InMemoryDatabase",
    "InMemoryIdempotency",
    "InMemoryKeys",
    "InMemoryLedger",
    "InMemoryMessages",
    "InMemoryOutbox",
    "InMemoryState",
    "InMemoryUnitOfWork",
    "RecordingBus",
    "ScriptedOperator",
    "SequentialIds",
    "always",
]
