"""One SMPP bind against a tiny SMSC on a real localhost socket, built on our codec.

`TinySmsc` is the SMSC these tests (and test_smpp_operator.py) talk to: it
binds with a password, answers submit_sm as a test scripts it (or holds the
answer), answers or ignores enquire_link, sends deliver_sm and other requests
on demand, and drops links when told. Every assertion is on what it or the
session recorded; waits poll that state (`until`), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from smsgw_adapters.operators.smpp.pdu import (
    Bind,
    BindMode,
    CommandId,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    FramingError,
    GenericNack,
    Pdu,
    PduReader,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    Unknown,
    encode,
    is_response,
    response_to,
)
from smsgw_adapters.operators.smpp.session import (
    BindSettings,
    LinkDown,
    Session,
    SubmitTimeout,
)
from smsgw_core.backoff import Backoff

QUICK = Backoff(first=0.01, ceiling=0.05)
Answer = SubmitSmResp | GenericNack | Unknown | None  # None: hold the answer


async def until(condition: Callable[[], object], within: float = 5.0,
                what: str = "the condition") -> None:
    """Poll `condition` until it holds; a bound on liveness, not a measure of speed."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"{what} did not come about within {within} s")
        await asyncio.sleep(0.005)


class SmscLink:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received: list[Pdu] = []
        self.bound_as: BindMode | None = None
        self.closed = False
        self.answers: dict[int, asyncio.Future[Pdu]] = {}
        self._sequence = 1000

    def send(self, pdu: Pdu) -> None:
        self.writer.write(encode(pdu))

    async def request(self, pdu: DeliverSm | EnquireLink | Unbind | Unknown) -> Pdu:
        self._sequence += 1
        answer: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self.answers[self._sequence] = answer
        self.send(replace(pdu, sequence_number=self._sequence))
        async with asyncio.timeout(5):
            return await answer

    def drop(self) -> None:
        self.writer.transport.abort()


class TinySmsc:
    def __init__(self, *, system_id: str = "gw", password: str = "secret",
                 answer: Callable[[SubmitSm], Answer] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.system_id, self.password = system_id, password
        self.answer = answer or self.accept
        self.answer_enquire_link = True
        self.tls = tls
        self.links: list[SmscLink] = []
        self.binds: list[Bind] = []
        self.submits: list[SubmitSm] = []
        self.held: list[tuple[SmscLink, SubmitSm]] = []
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._serving: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TinySmsc:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for link in self.links:
            link.drop()
        await asyncio.gather(*self._serving, return_exceptions=True)

    def accept(self, submit: SubmitSm) -> SubmitSmResp:
        """Accepted, with the next message id: m1, m2..."""
        self.accepted += 1
        return response_to(submit, message_id=f"m{self.accepted}")  # type: ignore[return-value]

    @property
    def bound(self) -> list[SmscLink]:
        return [link for link in self.links if link.bound_as and not link.closed]

    def release_held(self) -> None:
        """Answer every held submit_sm as accepted."""
        held, self.held = self.held, []
        for link, submit in held:
            link.send(self.accept(submit))

    def received(self, kind: type) -> list[Pdu]:
        return [pdu for link in self.links for pdu in link.received if isinstance(pdu, kind)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        serving = asyncio.current_task()
        assert serving is not None
        self._serving.add(serving)
        link = SmscLink(reader, writer)
        self.links.append(link)
        frames = PduReader()
        try:
            while data := await reader.read(65536):
                for pdu in frames.feed(data):
                    link.received.append(pdu)
                    self._on(link, pdu)
        except (ConnectionError, FramingError):
            pass
        finally:
            link.closed = True
            writer.close()

    def _on(self, link: SmscLink, pdu: Pdu) -> None:
        match pdu:
            case Bind():
                self.binds.append(pdu)
                ok = (pdu.system_id, pdu.password) == (self.system_id, self.password)
                status = CommandStatus.ESME_ROK if ok else CommandStatus.ESME_RINVPASWD
                link.bound_as = pdu.mode if ok else None
                link.send(response_to(pdu, status, system_id="tiny"))
            case SubmitSm():
                self.submits.append(pdu)
                answer = self.answer(pdu)
                if answer is None:
                    self.held.append((link, pdu))
                else:
                    link.send(replace(answer, sequence_number=pdu.sequence_number))
            case EnquireLink():
                if self.answer_enquire_link:
                    link.send(response_to(pdu))
            case Unbind():
                link.send(response_to(pdu))
            case _ if is_response(getattr(pdu, "command_id", 0)) or isinstance(
                    pdu, DeliverSmResp | EnquireLinkResp | GenericNack | UnbindResp):
                waiting = link.answers.pop(pdu.sequence_number, None)
                if waiting is not None:
                    waiting.set_result(pdu)


def settings(smsc: TinySmsc, **overrides: object) -> BindSettings:
    fields: dict[str, object] = {
        "host": "127.0.0.1", "port": smsc.port, "mode": BindMode.TRANSCEIVER,
        "system_id": "gw", "password": "secret", "system_type": "smsgw", "window": 10,
        "enquire_link_s": 30.0, "link_timeout_s": 2.0, "reconnect": QUICK,
        "throttle": Backoff(first=0.01, ceiling=0.08),
    }
    return BindSettings(**{**fields, **overrides})  # type: ignore[arg-type]


def a_submit(text: bytes = b"hello") -> SubmitSm:
    return SubmitSm(sequence_number=0, destination_addr="989121234567", short_message=text)


def deadline(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


@pytest.fixture
async def smsc() -> AsyncIterator[TinySmsc]:
    async with TinySmsc() as running:
        yield running


async def bound_session(smsc: TinySmsc, on_deliver: object = None,
                        **overrides: object) -> Session:
    session = Session("test bind", settings(smsc, **overrides), on_deliver)  # type: ignore[arg-type]
    session.start()
    await until(lambda: session.bound, what="the bind")
    return session


async def test_it_binds_with_its_credentials_and_a_submit_gets_its_answer(
        smsc: TinySmsc) -> None:
    session = await bound_session(smsc)
    answer = await session.submit(a_submit(), deadline())
    assert smsc.binds[0].mode is BindMode.TRANSCEIVER
    assert (smsc.binds[0].system_id, smsc.binds[0].password, smsc.binds[0].system_type) == (
        "gw", "secret", "smsgw")
    assert answer == SubmitSmResp(sequence_number=smsc.submits[0].sequence_number,
                                  message_id="m1")
    assert smsc.submits[0].short_message == b"hello"
    assert session.binds == 1
    await session.close()


async def test_answers_go_to_their_requests_by_sequence_number(smsc: TinySmsc) -> None:
    smsc.answer = lambda submit: None  # held, then answered in reverse order
    session = await bound_session(smsc)
    sends = [asyncio.create_task(session.submit(a_submit(bytes([65 + n])), deadline()))
             for n in range(3)]
    await until(lambda: len(smsc.held) == 3)
    for link, submit in reversed(smsc.held):
        link.send(response_to(submit, message_id=submit.short_message.decode()))
    assert [answer.message_id for answer in await asyncio.gather(*sends)  # type: ignore[union-attr]
            ] == ["A", "B", "C"]
    await session.close()


async def test_a_refused_bind_is_tried_again_and_the_session_is_not_bound() -> None:
    async with TinySmsc(password="other") as smsc:
        session = Session("test bind", settings(smsc))
        session.start()
        await until(lambda: len(smsc.binds) >= 3, what="three binds")
        assert session.attempted.is_set() and not session.bound and session.binds == 0
        with pytest.raises(LinkDown):
            await session.submit(a_submit(), deadline())
        await session.close()


async def test_no_more_submits_out_than_the_window(smsc: TinySmsc) -> None:
    smsc.answer = lambda submit: None
    session = await bound_session(smsc, window=2)
    sends = [asyncio.create_task(session.submit(a_submit(), deadline())) for _ in range(5)]
    await until(lambda: len(smsc.held) == 2)
    assert session.outstanding == 5
    smsc.release_held()
    await until(lambda: len(smsc.held) == 2 and len(smsc.submits) == 4)
    smsc.release_held()
    await until(lambda: len(smsc.held) == 1 and len(smsc.submits) == 5)
    smsc.release_held()
    assert all(isinstance(answer, SubmitSmResp) for answer in await asyncio.gather(*sends))
    assert session.outstanding == 0
    await session.close()


async def test_a_full_window_until_the_deadline_is_a_timeout(smsc: TinySmsc) -> None:
    smsc.answer = lambda submit: None
    session = await bound_session(smsc, window=1)
    first = asyncio.create_task(session.submit(a_submit(), deadline()))
    await until(lambda: len(smsc.held) == 1)
    with pytest.raises(SubmitTimeout, match="window"):
        await session.submit(a_submit(), deadline(0.05))
    smsc.release_held()
    assert isinstance(await first, SubmitSmResp)
    assert len(smsc.submits) == 1
    await session.close()


async def test_no_answer_by_the_deadline_is_a_timeout(smsc: TinySmsc) -> None:
    smsc.answer = lambda submit: None
    session = await bound_session(smsc)
    with pytest.raises(SubmitTimeout, match="no submit_sm_resp"):
        await session.submit(a_submit(), deadline(0.05))
    assert session.outstanding == 0 and session.bound
    await session.close()


async def test_a_dropped_link_fails_what_waits_and_the_session_binds_again(
        smsc: TinySmsc) -> None:
    smsc.answer = lambda submit: None
    session = await bound_session(smsc, window=3)
    sends = [asyncio.create_task(session.submit(a_submit(), deadline())) for _ in range(3)]
    await until(lambda: len(smsc.held) == 3)
    smsc.links[0].drop()
    for send in sends:
        with pytest.raises(LinkDown):
            await send
    await until(lambda: session.bound and len(smsc.bound) == 1, what="a second bind")
    smsc.answer = smsc.accept
    assert isinstance(await session.submit(a_submit(), deadline()), SubmitSmResp)
    assert (session.binds, session.drops, len(smsc.binds)) == (2, 1, 2)
    await session.close()


async def test_throttled_submits_pause_the_bind_and_go_again(smsc: TinySmsc) -> None:
    refusals = iter([CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL,
                     CommandStatus.ESME_RTHROTTLED])

    def answer(submit: SubmitSm) -> SubmitSmResp:
        status = next(refusals, CommandStatus.ESME_ROK)
        return response_to(submit, status, message_id="" if status else "taken")  # type: ignore[return-value]

    smsc.answer = answer
    session = await bound_session(smsc)
    result = await session.submit(a_submit(b"again"), deadline())
    assert isinstance(result, SubmitSmResp) and result.message_id == "taken"
    assert [s.short_message for s in smsc.submits] == [b"again"] * 4
    assert len({s.sequence_number for s in smsc.submits}) == 4  # each a new request
    assert session.throttled == 3
    await session.close()


async def test_a_pause_that_would_outlast_the_deadline_times_out_at_once(
        smsc: TinySmsc) -> None:
    smsc.answer = lambda submit: response_to(  # type: ignore[assignment, return-value]
        submit, CommandStatus.ESME_RTHROTTLED)
    session = await bound_session(smsc, throttle=Backoff(first=60.0, ceiling=60.0))
    with pytest.raises(SubmitTimeout, match="throttles"):
        await session.submit(a_submit(), deadline(5.0))
    assert len(smsc.submits) == 1 and session.throttled == 1
    await session.close()


async def test_a_refusal_a_nack_and_an_accepted_answer_are_returned_as_they_are(
        smsc: TinySmsc) -> None:
    answers: list[Answer] = [
        SubmitSmResp(sequence_number=0, command_status=CommandStatus.ESME_RINVDSTADR),
        GenericNack(sequence_number=0, command_status=CommandStatus.ESME_RINVCMDLEN),
    ]
    smsc.answer = lambda submit: answers.pop(0)
    session = await bound_session(smsc)
    first = await session.submit(a_submit(), deadline())
    second = await session.submit(a_submit(), deadline())
    assert isinstance(first, SubmitSmResp)
    assert first.command_status == CommandStatus.ESME_RINVDSTADR
    assert isinstance(second, GenericNack)
    await session.close()


async def test_it_answers_enquire_link_and_asks_when_the_link_is_idle(smsc: TinySmsc) -> None:
    session = await bound_session(smsc, enquire_link_s=0.05)
    assert isinstance(await smsc.links[0].request(EnquireLink(sequence_number=0)),
                      EnquireLinkResp)
    await until(lambda: len(smsc.received(EnquireLink)) >= 2, what="enquire_links")
    assert session.bound and session.drops == 0
    await session.close()


async def test_an_unanswered_enquire_link_drops_the_link_and_it_binds_again(
        smsc: TinySmsc) -> None:
    smsc.answer_enquire_link = False
    session = await bound_session(smsc, enquire_link_s=0.05, link_timeout_s=0.2)
    await until(lambda: len(smsc.binds) >= 2 and session.bound, what="a second bind")
    assert session.drops >= 1 and smsc.links[0].closed
    await session.close()


async def test_deliver_sm_is_answered_with_what_the_handler_says(smsc: TinySmsc) -> None:
    seen: list[DeliverSm] = []

    async def on_deliver(deliver: DeliverSm) -> int:
        seen.append(deliver)
        if deliver.short_message == b"boom":
            raise RuntimeError("not recorded")
        return CommandStatus.ESME_RX_P_APPN if deliver.short_message == b"no" else 0

    await bound_session(smsc, on_deliver)
    link = smsc.links[0]
    answers = [await link.request(DeliverSm(sequence_number=0, short_message=text))
               for text in (b"yes", b"no", b"boom")]
    assert [type(a) for a in answers] == [DeliverSmResp] * 3
    assert [a.command_status for a in answers] == [
        CommandStatus.ESME_ROK, CommandStatus.ESME_RX_P_APPN, CommandStatus.ESME_RX_T_APPN]
    assert [d.short_message for d in seen] == [b"yes", b"no", b"boom"]


async def test_requests_it_does_not_take_are_refused_and_unknown_ones_nacked(
        smsc: TinySmsc) -> None:
    session = await bound_session(smsc)
    link = smsc.links[0]
    query = await link.request(Unknown(command_id=CommandId.QUERY_SM, sequence_number=0,
                                       body=b"m1\x00\x00\x00\x00"))
    assert isinstance(query, Unknown) and query.command_id == CommandId.QUERY_SM_RESP
    assert query.command_status == CommandStatus.ESME_RINVCMDID
    unknown = await link.request(Unknown(command_id=0x00000777, sequence_number=0))
    assert isinstance(unknown, GenericNack)
    assert unknown.command_status == CommandStatus.ESME_RINVCMDID
    assert session.bound
    await session.close()


async def test_the_smsc_s_unbind_is_answered_and_the_session_binds_again(
        smsc: TinySmsc) -> None:
    session = await bound_session(smsc)
    assert isinstance(await smsc.links[0].request(Unbind(sequence_number=0)), UnbindResp)
    await until(lambda: len(smsc.binds) == 2 and session.bound, what="a second bind")
    await session.close()


async def test_close_unbinds_and_binds_no_more(smsc: TinySmsc) -> None:
    session = await bound_session(smsc)
    await session.close()
    assert len(smsc.received(Unbind)) == 1
    await until(lambda: smsc.links[0].closed, what="the link closed")
    assert not session.bound and len(smsc.binds) == 1
    with pytest.raises(LinkDown):
        await session.submit(a_submit(), deadline())


async def test_close_answers_the_deliver_sm_in_hand_before_unbinding(smsc: TinySmsc) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def on_deliver(deliver: DeliverSm) -> int:
        entered.set()
        await release.wait()
        return CommandStatus.ESME_ROK

    session = await bound_session(smsc, on_deliver)
    link = smsc.links[0]
    answer = asyncio.create_task(link.request(DeliverSm(sequence_number=0)))
    await entered.wait()
    closing = asyncio.create_task(session.close())
    await asyncio.sleep(0)
    release.set()
    assert isinstance(await answer, DeliverSmResp)
    await closing
    kinds = [type(pdu) for pdu in link.received]
    assert kinds.index(DeliverSmResp) < kinds.index(Unbind)


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client
    context trusting it (made with the openssl command line)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


async def test_it_binds_over_tls(tls_pair: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server, client = tls_pair
    async with TinySmsc(tls=server) as smsc:
        session = await bound_session(smsc, tls=client)
        assert isinstance(await session.submit(a_submit(), deadline()), SubmitSmResp)
        await session.close()
