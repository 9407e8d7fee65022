"""Concurrent sends share one transaction: group commit for the accept path.

Each accepted send costs a commit, and a durable commit is a disk flush. Sends
that arrive while earlier ones are in the database wait, and the next free
slot takes them all at once: one transaction, one flush, one round of balance
locks for the whole group. Nothing waits on a timer: under light load a send
goes alone and at once; under heavy load the groups grow by themselves.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from smsgw_core.services.send_sms import Accepted, SendSms, SmsSender

MAX_GROUP = 200  # sends per transaction: bounds the statements' size and a lock's hold
MAX_IN_FLIGHT = 2  # transactions at once: enough to keep the database busy while one flushes


@dataclass
class CoalescingSender:
    """`send` as SmsSender's, answered from a transaction shared with concurrent sends.

    A send with an Idempotency-Key goes alone (its replay check reads first).
    """

    sender: SmsSender
    max_group: int = MAX_GROUP
    max_in_flight: int = MAX_IN_FLIGHT
    _waiting: deque[tuple[SendSms, asyncio.Future[Accepted]]] = field(
        default_factory=deque, init=False
    )
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    async def send(self, command: SendSms) -> Accepted:
        if command.idempotency_key is not None:
            return await self.sender.send(command)
        answer: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, answer))
        self._start_groups()
        return await answer

    def _start_groups(self) -> None:
        while self._waiting and len(self._in_flight) < self.max_in_flight:
            group = [self._waiting.popleft()
                     for _ in range(min(self.max_group, len(self._waiting)))]
            task = asyncio.create_task(self._accept(group))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._start_groups()

    async def _accept(self, group: list[tuple[SendSms, asyncio.Future[Accepted]]]) -> None:
        try:
            answers = await self.sender.send_many([command for command, _ in group])
        except BaseException as exc:  # the database failed: every send of the group fails
            for _, answer in group:
                if not answer.done():
                    answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, answer), result in zip(group, answers, strict=True):
            if answer.done():  # its request was cancelled (the client went away)
                continue
            if isinstance(result, Accepted):
                answer.set_result(result)
            else:
                answer.set_exception(result)
