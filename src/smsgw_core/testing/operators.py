"""An operator whose answers a test scripts."""

from __future__ import annotations

from collections.abc import Callable

from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms

Behaviour = Callable[[OutgoingSms], str | ErrorClass]


class ScriptedOperator:
    """An operator whose answer per message comes from `behaviour`.

    `behaviour` returns the operator's message id, or an ErrorClass to fail with.
    """

    def __init__(self, name: str, behaviour: Behaviour | None = None) -> None:
        self._name = name
        self.behaviour: Behaviour = behaviour or (lambda sms: f"{name}-{sms.reference}")
        self.sent: list[OutgoingSms] = []
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    async def send(self, sms: OutgoingSms) -> str:
        self.calls += 1
        answer = self.behaviour(sms)
        if isinstance(answer, ErrorClass):
            raise OperatorError(self._name, answer, "scripted failure")
        self.sent.append(sms)
        return answer


def always(error: ErrorClass) -> Behaviour:
    return lambda sms: error
