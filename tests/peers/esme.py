"""A minimal ESME on our SMPP codec, to talk to the test SMSCs without the adapter.

One TCP link; every PDU it receives is kept in arrival order (`received`), the
responses matched to their requests by sequence number. A deliver_sm is
answered as `answer_deliver` decides (ESME_ROK unless told otherwise; None:
left unanswered) and queued in `delivers`; an enquire_link is answered.
Waits are bounded (WAIT_S) so that a missing PDU fails the test instead of
hanging it; nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace

from smsgw_adapters.operators.smpp.pdu import (
    Bind,
    BindMode,
    BindResp,
    CommandStatus,
    DeliverSm,
    EnquireLink,
    Pdu,
    PduReader,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    command_id_of,
    encode,
    is_response,
    response_to,
)

WAIT_S = 20.0
AnswerDeliver = Callable[[DeliverSm], int | None]


def always_ok(_: DeliverSm) -> int | None:
    return CommandStatus.ESME_ROK


class Esme:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._sequence = 0
        self._waiting: dict[int, asyncio.Future[Pdu]] = {}
        self.received: list[Pdu] = []
        self.delivers: asyncio.Queue[DeliverSm] = asyncio.Queue()
        self.answer_deliver: AnswerDeliver = always_ok
        self.closed_by_peer = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    def next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def send(self, *pdus: Pdu) -> list[asyncio.Future[Pdu]]:
        """Write `pdus` in one go; the futures of their responses."""
        futures = []
        for pdu in pdus:
            if not is_response(command_id_of(pdu)):
                futures.append(self._waiting.setdefault(
                    pdu.sequence_number, asyncio.get_running_loop().create_future()))
        self._writer.write(b"".join(encode(pdu) for pdu in pdus))
        return futures

    async def request(self, pdu: Pdu) -> Pdu:
        [answer] = self.send(pdu)
        return await asyncio.wait_for(answer, WAIT_S)

    async def bind(self, system_id: str, password: str,
                   mode: BindMode = BindMode.TRANSCEIVER) -> BindResp:
        answer = await self.request(Bind(mode=mode, sequence_number=self.next_sequence(),
                                         system_id=system_id, password=password))
        assert isinstance(answer, BindResp), answer
        return answer

    def submit_sm(self, **fields: object) -> SubmitSm:
        return SubmitSm(sequence_number=self.next_sequence(), **fields)  # type: ignore[arg-type]

    async def submit(self, *submits: SubmitSm) -> list[SubmitSmResp]:
        """Send `submits` pipelined in one write; their answers in order."""
        answers = await asyncio.wait_for(asyncio.gather(*self.send(*submits)), WAIT_S)
        assert all(isinstance(answer, SubmitSmResp) for answer in answers), answers
        return answers  # type: ignore[return-value]

    async def next_deliver(self) -> DeliverSm:
        return await asyncio.wait_for(self.delivers.get(), WAIT_S)

    async def dropped(self) -> None:
        """Return once the peer closed the link."""
        await asyncio.wait_for(self.closed_by_peer.wait(), WAIT_S)

    async def unbind(self) -> None:
        await self.request(Unbind(sequence_number=self.next_sequence()))

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def _read(self) -> None:
        pdus = PduReader()
        try:
            while data := await self._reader.read(65536):
                for pdu in pdus.feed(data):
                    self._take(pdu)
        except ConnectionError:
            pass
        finally:
            self.closed_by_peer.set()

    def _take(self, pdu: Pdu) -> None:
        self.received.append(pdu)
        if isinstance(pdu, DeliverSm):
            status = self.answer_deliver(pdu)
            if status is not None:
                self._writer.write(encode(replace(response_to(pdu), command_status=status)))
            self.delivers.put_nowait(pdu)
        elif isinstance(pdu, EnquireLink):
            self._writer.write(encode(response_to(pdu)))
        elif is_response(command_id_of(pdu)):
            answer = self._waiting.pop(pdu.sequence_number, None)
            if answer is not None and not answer.done():
                answer.set_result(pdu)


@contextlib.asynccontextmanager
async def connected(host: str, port: int) -> AsyncIterator[Esme]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), WAIT_S)
    esme = Esme(reader, writer)
    try:
        yield esme
    finally:
        await esme.close()


def kinds(pdus: Sequence[Pdu]) -> list[str]:
    """The PDUs' type names, in order (to read the order things arrived in)."""
    return [type(pdu).__name__ for pdu in pdus]

