"""One SMPP bind: a connection to the SMSC, kept bound, with a window of submit_sm.

A `Session` connects (TCP, or TLS when given a context), binds (transceiver,
transmitter or receiver), and keeps the link: every request it sends waits
for the response with its sequence number (a future in a dict), at most
`window` submit_sm at once (a semaphore). It answers the SMSC's enquire_link,
and sends its own when it has heard nothing for `enquire_link_s`; no answer
within `link_timeout_s` means the link is dead. When the link drops, or a bind
fails, it connects and binds again after a pause (`reconnect`, a Backoff),
until closed.

What a link that drops does to the requests on it: each one waiting for its
answer fails with `LinkDown` at once (a submit_sm the SMSC may or may not have
taken: the gateway resends it later, at least once as ever), and so does any
submit while no link is bound (`bound` says whether one is).

Throttling: a submit_sm_resp of ESME_RTHROTTLED or ESME_RMSGQFUL pauses the
whole bind (every submit waits), first `throttle.first` then longer while the
SMSC keeps refusing what was sent after the pause began, and the same PDU is
sent again after the pause; an accepted submit sent after the pause ends the
slowing down. Only when the caller's deadline comes first does the submit
fail (`SubmitTimeout`). Neither the message nor the link is at fault.

The SMSC's deliver_sm go to `on_deliver`, each in its own task, and are
answered with the status it returns (an exception: ESME_RX_T_APPN, so the
SMSC delivers it again): the answer leaves only once the handler has done
with it. Its unbind is answered and the link dropped (bound again after the
pause); a request this side does not take is answered ESME_RINVCMDID (a
command SMPP 3.4 defines) or with generic_nack (an unknown command id or an
unreadable body). `close()` lets the deliver_sm being handled be answered,
unbinds, waits a little for unbind_resp, and closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from smsgw_adapters.operators.smpp.pdu import (
    MAX_SEQUENCE_NUMBER,
    RESPONSE_BIT,
    Bind,
    BindMode,
    BindResp,
    CommandId,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    FramingError,
    GenericNack,
    Malformed,
    Pdu,
    PduReader,
    SubmitOutcome,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    Unknown,
    classify_submit_status,
    encode,
    generic_nack,
    is_response,
    response_to,
    status_name,
)
from smsgw_core.backoff import Backoff

log = logging.getLogger("smsgw.smpp")

DeliverHandler = Callable[[DeliverSm], Awaitable[int]]  # -> the deliver_sm_resp's status
# What a submit_sm gets back: a submit_sm_resp, a generic_nack, or, from a peer gone
# astray, a Malformed submit_sm_resp or any other PDU with its sequence number.
SubmitAnswer = Pdu

DEFAULT_RECONNECT = Backoff(first=0.5, ceiling=30.0, jitter=0.5)
DEFAULT_THROTTLE = Backoff(first=0.1, ceiling=1.0)  # the SMSC's rate is per second
READ_CHUNK = 64 * 1024
# Requests SMPP 3.4 defines that this side never takes; alert_notification and outbind
# have no response (the spec gives none), the rest are answered ESME_RINVCMDID.
_UNANSWERED = frozenset({CommandId.ALERT_NOTIFICATION, CommandId.OUTBIND})
_SMPP_COMMANDS = frozenset(int(command) for command in CommandId)


class LinkDown(Exception):
    """The bind is not bound, or its link dropped before the answer came."""


class BindRefused(Exception):
    """The SMSC answered the bind with an error status (or not with a bind_resp)."""


class SubmitTimeout(Exception):
    """The caller's deadline came before the submit_sm was answered and accepted."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindSettings:
    host: str
    port: int
    mode: BindMode
    system_id: str
    password: str
    system_type: str = ""
    window: int = 10
    enquire_link_s: float = 30.0
    # Bounds the TCP (and TLS) connect, the wait for bind_resp, for enquire_link_resp
    # and, at close, for the receipts in hand (and 2 s at most for unbind_resp).
    link_timeout_s: float = 10.0
    tls: ssl.SSLContext | None = None
    reconnect: Backoff = DEFAULT_RECONNECT
    throttle: Backoff = DEFAULT_THROTTLE


class _Link:
    """One connection: its writer, the requests waiting for an answer, the deliver_sm
    being handled."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pending: dict[int, asyncio.Future[Pdu]] = {}
        self.handlers: set[asyncio.Task[None]] = set()
        self.last_heard = asyncio.get_running_loop().time()
        self.bound = False
        self.closed = False
        self.reading: asyncio.Task[None] | None = None

    def send(self, pdu: Pdu) -> None:
        if self.closed:
            raise LinkDown("the link is closed")
        self.writer.write(encode(pdu))

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.bound = False
        self.writer.close()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(LinkDown(reason))
        self.pending.clear()
        if self.reading is not None and self.reading is not asyncio.current_task():
            self.reading.cancel()


class Session:
    def __init__(self, label: str, settings: BindSettings,
                 on_deliver: DeliverHandler | None = None) -> None:
        self.label = label  # for the logs: "MCI bind 1 (transceiver)"
        self.settings = settings
        self._on_deliver = on_deliver
        self._window = asyncio.Semaphore(settings.window)
        self._sequence = 0
        self._link: _Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Throttling: the pause in force, when it began, and how many in a row.
        self._paused_until = 0.0
        self._pause_began = float("-inf")
        self._throttled_in_a_row = 0
        self.attempted = asyncio.Event()  # set once the first bind has been tried
        self.outstanding = 0  # submits in progress (waiting, sent, or paused)
        self.binds = 0  # successful binds, the first included
        self.drops = 0  # links lost once bound
        self.throttled = 0  # submit_sm_resp that asked to slow down

    @property
    def bound(self) -> bool:
        return self._link is not None and self._link.bound

    def start(self) -> None:
        """Connect and bind in the background (the running loop's), and stay bound."""
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"smpp {self.label}")

    async def close(self) -> None:
        """Answer the deliver_sm in hand, unbind, and stop binding again."""
        self._closing = True
        link = self._link
        if link is not None and link.bound:
            timeout = self.settings.link_timeout_s
            if link.handlers:
                await asyncio.wait(set(link.handlers), timeout=timeout)
            with contextlib.suppress(LinkDown, TimeoutError, OSError):
                await self._request(link, Unbind(sequence_number=0),
                                    asyncio.get_running_loop().time() + min(timeout, 2.0))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if link is not None:
            link.close("the bind is closed")
            with contextlib.suppress(OSError):
                await link.writer.wait_closed()

    # ---- submit ----------------------------------------------------------------------

    async def submit(self, pdu: SubmitSm, deadline: float) -> SubmitAnswer:
        """Send `pdu` (its sequence number is set here) and return the SMSC's answer,
        sent again after a pause while the SMSC asks to slow down. `deadline` is the
        loop's time. LinkDown: not bound, or the link dropped before the answer;
        SubmitTimeout: no accepted answer by the deadline."""
        self.outstanding += 1
        try:
            while True:
                await self._wait_out_pause(deadline)
                sent_at, answer = await self._submit_once(pdu, deadline)
                if not isinstance(answer, SubmitSmResp):
                    return answer
                outcome = classify_submit_status(answer.command_status)
                if outcome is not SubmitOutcome.SLOW_DOWN:
                    if outcome is SubmitOutcome.OK and sent_at >= self._pause_began:
                        self._throttled_in_a_row = 0
                    return answer
                self._slow_down(sent_at, answer.command_status)
        finally:
            self.outstanding -= 1

    async def _submit_once(self, pdu: SubmitSm, deadline: float) -> tuple[float, SubmitAnswer]:
        self._live_link()
        try:
            async with asyncio.timeout_at(deadline):
                await self._window.acquire()
        except TimeoutError:
            raise SubmitTimeout(f"the window of {self.settings.window} stayed full") from None
        try:
            link = self._live_link()  # it may have dropped while the window was full
            sent_at = asyncio.get_running_loop().time()
            try:
                answer = await self._request(link, pdu, deadline)
            except TimeoutError:
                raise SubmitTimeout("no submit_sm_resp in time") from None
            return sent_at, answer
        finally:
            self._window.release()

    def _live_link(self) -> _Link:
        link = self._link
        if link is None or not link.bound or self._closing:
            raise LinkDown("not bound")
        return link

    async def _wait_out_pause(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while (left := self._paused_until - loop.time()) > 0:
            if self._paused_until > deadline:
                raise SubmitTimeout("the SMSC throttles this bind past the send's time")
            await asyncio.sleep(left)

    def _slow_down(self, sent_at: float, status: int) -> None:
        self.throttled += 1
        if sent_at < self._pause_began:
            return  # sent before the pause in force began: that pause answers it already
        self._throttled_in_a_row += 1
        now = asyncio.get_running_loop().time()
        pause = self.settings.throttle.delay(self._throttled_in_a_row)
        self._pause_began, self._paused_until = now, now + pause
        log.info("%s: %s, pausing submits %.2f s", self.label, status_name(status), pause)

    async def _request(self, link: _Link, pdu: Pdu, deadline: float) -> Pdu:
        sequence = self._next_sequence()
        answer: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        link.pending[sequence] = answer
        try:
            link.send(replace(pdu, sequence_number=sequence))
            async with asyncio.timeout_at(deadline):
                return await answer
        finally:
            link.pending.pop(sequence, None)

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % MAX_SEQUENCE_NUMBER + 1
        return self._sequence

    # ---- the link ----------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            try:
                link = await self._open()
            except Exception as error:  # refused, unreachable, timed out, TLS...: again later
                failures += 1
                pause = self.settings.reconnect.delay(failures)
                log.warning("%s: cannot bind to %s:%d (%s); trying again in %.1f s",
                            self.label, self.settings.host, self.settings.port,
                            _said(error), pause)
                self.attempted.set()
                await asyncio.sleep(pause)
                continue
            failures = 0
            self.binds += 1
            self._link = link
            self.attempted.set()
            log.info("%s: bound to %s:%d", self.label, self.settings.host, self.settings.port)
            try:
                await self._serve(link)
            finally:
                self._link = None
                link.close("the link dropped")
            if not self._closing:
                self.drops += 1
                pause = self.settings.reconnect.delay(1)
                log.warning("%s: the link dropped; binding again in %.1f s", self.label, pause)
                await asyncio.sleep(pause)

    async def _open(self) -> _Link:
        s = self.settings
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(s.link_timeout_s):
            reader, writer = await asyncio.open_connection(s.host, s.port, ssl=s.tls)
        link = _Link(reader, writer)
        link.reading = loop.create_task(self._read(link), name=f"smpp {self.label} reader")
        try:
            answer = await self._request(link, Bind(
                mode=s.mode, sequence_number=0, system_id=s.system_id, password=s.password,
                system_type=s.system_type,
            ), loop.time() + s.link_timeout_s)
            if not isinstance(answer, BindResp) or answer.command_status:
                raise BindRefused(f"the SMSC answered {type(answer).__name__} "
                                  f"{status_name(answer.command_status)}")
        except BaseException:
            link.close("the bind failed")
            raise
        link.bound = True
        return link

    async def _serve(self, link: _Link) -> None:
        """Until the link ends: its reader runs, and enquire_link when idle."""
        assert link.reading is not None
        keepalive = asyncio.get_running_loop().create_task(self._keep_alive(link))
        try:
            await asyncio.wait({link.reading, keepalive}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            keepalive.cancel()
            link.reading.cancel()
            await asyncio.gather(keepalive, link.reading, return_exceptions=True)

    async def _keep_alive(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        every = self.settings.enquire_link_s
        while True:
            idle = loop.time() - link.last_heard
            if idle < every:
                await asyncio.sleep(every - idle)
                continue
            try:
                await self._request(link, EnquireLink(sequence_number=0),
                                    loop.time() + self.settings.link_timeout_s)
            except TimeoutError:
                log.warning("%s: no answer to enquire_link: the link is dead", self.label)
                return
            except LinkDown:
                return

    async def _read(self, link: _Link) -> None:
        frames = PduReader()
        loop = asyncio.get_running_loop()
        try:
            while data := await link.reader.read(READ_CHUNK):
                link.last_heard = loop.time()
                for pdu in frames.feed(data):
                    self._dispatch(link, pdu)
        except FramingError as error:
            log.warning("%s: the stream is broken (%s): dropping the link", self.label, error)
        except (OSError, LinkDown) as error:
            log.info("%s: the link failed: %s", self.label, _said(error))
        except Exception:
            log.exception("%s: dropping the link after an error", self.label)
        finally:
            link.close("the link dropped")

    def _dispatch(self, link: _Link, pdu: Pdu) -> None:
        match pdu:
            case EnquireLink():
                link.send(response_to(pdu))
            case DeliverSm():
                task = asyncio.get_running_loop().create_task(self._deliver(link, pdu))
                link.handlers.add(task)
                task.add_done_callback(link.handlers.discard)
            case Unbind():
                log.info("%s: the SMSC unbinds", self.label)
                link.send(response_to(pdu))
                link.close("the SMSC unbound")
            case (SubmitSmResp() | BindResp() | EnquireLinkResp() | UnbindResp() | GenericNack()
                  | DeliverSmResp()):
                self._answered(link, pdu)
            case Unknown() | Malformed() if is_response(pdu.command_id):
                self._answered(link, pdu)
            case Unknown() if pdu.command_id in _UNANSWERED:
                log.info("%s: ignoring command 0x%08X", self.label, pdu.command_id)
            case Unknown() if pdu.command_id in _SMPP_COMMANDS:
                link.send(Unknown(command_id=pdu.command_id | RESPONSE_BIT,
                                  sequence_number=pdu.sequence_number,
                                  command_status=CommandStatus.ESME_RINVCMDID))
            case Unknown() | Malformed():
                log.info("%s: nacking command 0x%08X", self.label, pdu.command_id)
                link.send(generic_nack(pdu))
            case Bind() | SubmitSm():  # requests an SMSC does not send an ESME
                link.send(response_to(pdu, CommandStatus.ESME_RINVCMDID))

    def _answered(self, link: _Link, pdu: Pdu) -> None:
        future = link.pending.get(pdu.sequence_number)
        if future is None or future.done():
            log.info("%s: an answer to nothing asked (sequence %d, %s): ignored",
                     self.label, pdu.sequence_number, type(pdu).__name__)
            return
        future.set_result(pdu)

    async def _deliver(self, link: _Link, deliver: DeliverSm) -> None:
        status: int = CommandStatus.ESME_ROK
        if self._on_deliver is not None:
            try:
                status = await self._on_deliver(deliver)
            except Exception:
                log.exception("%s: a deliver_sm could not be handled; the SMSC will send "
                              "it again", self.label)
                status = CommandStatus.ESME_RX_T_APPN
        if link.closed:
            log.info("%s: the link dropped before a deliver_sm was answered; the SMSC "
                     "will send it again", self.label)
            return
        link.send(response_to(deliver, status))


def _said(error: BaseException) -> str:
    return str(error) or type(error).__name__
