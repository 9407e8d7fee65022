"""Resilience behind the core's CircuitBreaker port: tenacity retry, purgatory breaker."""

from smsgw_adapters.resilience.breaker import BreakerState, ResilientBreaker, is_transient

__all__ = ["BreakerState", "ResilientBreaker", "is_transient"]
