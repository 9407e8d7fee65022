"""Resilience behind the core's CircuitBreaker port: a send's retries inside a rate circuit."""

from smsgw_adapters.resilience.breaker import ResilientBreaker, is_transient
from smsgw_adapters.resilience.circuit import BreakerState, CircuitSettings, RateCircuit

__all__ = ["BreakerState", "CircuitSettings", "RateCircuit", "ResilientBreaker", "is_transient"]
