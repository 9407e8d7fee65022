"""Choosing an operator: ordered failover behind per-operator circuit breakers.

A transient error (timeout, 5xx, open breaker) moves on to the next operator; a
permanent one (the operator refused this number) fails the recipient at once,
since another operator would refuse it too and we must not pay twice to learn it.
When every operator failed transiently the outcome is `retryable`: nothing says
the message is bad, only that nobody can take it now, so it waits and is tried
again (see validity.py) rather than failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from smsgw_core.operators import CircuitOpen, OperatorError, OutgoingSms
from smsgw_core.ports import CircuitBreaker, Operator


@dataclass(frozen=True, slots=True)
class FailoverResult:
    """What trying one recipient on each operator in turn came to."""

    delivered: bool
    provider: str  # the operator that took it ("" when none did)
    provider_message_id: str
    errors: tuple[str, ...]
    retryable: bool = False  # not delivered, but only for want of an available operator


async def send_with_failover(
    sms: OutgoingSms, operators: Sequence[Operator], breaker: CircuitBreaker
) -> FailoverResult:
    errors: list[str] = []
    for operator in operators:
        try:
            message_id = await breaker.call(operator.name, partial(operator.send, sms))
        except CircuitOpen as exc:
            errors.append(str(exc))
        except OperatorError as exc:
            errors.append(str(exc))
            if not exc.transient:
                return FailoverResult(False, "", "", tuple(errors))
        except Exception as exc:  # an adapter bug must not sink the other recipients
            errors.append(f"{operator.name}: unexpected {type(exc).__name__}: {exc}")
        else:
            return FailoverResult(True, operator.name, message_id, tuple(errors))
    return FailoverResult(
        False, "", "", tuple(errors or ["no operator configured"]), retryable=True
    )
