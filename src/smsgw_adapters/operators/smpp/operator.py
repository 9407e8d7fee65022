"""An SMPP 3.4 operator: the Operator port over one or more binds to an SMSC (url.py).

Sending. A message's text becomes the parts the customer was charged for
(text.short_messages, with one concatenation reference per message drawn from
its stable reference, so a resend carries the same one). The parts go in
order on one bind (the live one with the fewest submits in progress), each
a submit_sm answered before the next is sent, within one deadline: the
gateway's operator timeout for the whole message. The message's id is the
FIRST part's message_id, and only the first part asks for a delivery receipt
(registered_delivery=1; the others 0), so the receipt the gateway gets names
the id it stored and no part's receipt is left an orphan. (An SMSC that
reports every part anyway sends receipts for ids nobody stored: kept, then
counted as orphans.) The SMS's `valid_until`, when it has one, goes as
validity_period in UTC. Source and destination addresses: url.address.

What a send raises, as OperatorError (the submit_sm_resp statuses are
pdu.classify_submit_status's table):
- nothing: every part answered ESME_ROK (the first part's message_id returned);
- PERMANENT: a status about the message itself (invalid destination, source,
  length, data coding, expiry...), or a text SMPP cannot carry;
- TRANSIENT: every other status, a generic_nack, an unreadable answer, no
  bind bound (at once: failover moves on; only while the binds' first attempt
  is under way does a send wait for it), the link dropping before the answer,
  or the deadline passing, the SMSC's throttling included (ESME_RTHROTTLED and
  ESME_RMSGQFUL pause the bind and send the part again: see session.py).
A part that fails after earlier parts were taken fails the message: the resend
(the gateway's, at least once) sends every part again.

Receipts. A deliver_sm the SMSC sends on any bind is read here: a final receipt
goes to the ReceiptSink, and only once `take` has returned is the deliver_sm
answered ESME_ROK; if `take` raises, it is answered ESME_RX_T_APPN and the SMSC
delivers it again. Receipts arriving within `receipt_linger_s` of each other
are taken together (one transaction), each answered after its batch commits.
A receipt that is not final (ENROUTE, ACCEPTD), one that cannot be read, and a
message from a phone (MO: storing them is for later) are answered ESME_ROK,
logged at INFO and counted (`counts`).

Lifecycle: `start()` binds in the running loop and keeps binding (the
operator kind starts it as it is built, so receipts flow before any send; a
send starts it too); `close()` unbinds every bind.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from smsgw_adapters.operators.smpp.pdu import (
    REGISTERED_DELIVERY_FINAL,
    BindMode,
    CommandStatus,
    DeliverSm,
    GenericNack,
    PduError,
    SubmitOutcome,
    SubmitSm,
    SubmitSmResp,
    classify_submit_status,
    smpp_time,
    status_name,
)
from smsgw_adapters.operators.smpp.receipt_text import (
    UnreadableReceipt,
    is_receipt,
    read_receipt,
)
from smsgw_adapters.operators.smpp.session import (
    DEFAULT_RECONNECT,
    DEFAULT_THROTTLE,
    BindSettings,
    LinkDown,
    Session,
    SubmitAnswer,
    SubmitTimeout,
)
from smsgw_adapters.operators.smpp.text import reference_for, short_messages
from smsgw_adapters.operators.smpp.url import BindPlan, SmppOptions, parse
from smsgw_core.backoff import Backoff
from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms
from smsgw_core.ports import ReceiptSink
from smsgw_core.receipts import OperatorMessage, Receipt

log = logging.getLogger("smsgw.smpp")

RECEIPT_LINGER_S = 0.005
RECEIPT_BATCH = 200


@dataclass
class SmppCounts:
    """What the operator's deliver_sm were (the metrics read these)."""

    receipts_taken: int = 0  # final receipts recorded, then acknowledged
    receipts_refused: int = 0  # final receipts `take` failed on: answered ESME_RX_T_APPN
    receipts_not_final: int = 0  # ENROUTE, ACCEPTD...: acknowledged, nothing applied
    receipts_unreadable: int = 0  # no message id: acknowledged, nothing applied
    mo_messages: int = 0  # from phones: acknowledged, not stored
    receipts_unrecorded: int = 0  # final, but the operator was given no sink: acknowledged


class ReceiptBatches:
    """Receipts arriving within `linger_s` of each other, taken by the sink together."""

    def __init__(self, sink: ReceiptSink, linger_s: float = RECEIPT_LINGER_S,
                 most: int = RECEIPT_BATCH) -> None:
        self._sink = sink
        self._linger_s = linger_s
        self._most = most
        self._gathering: list[tuple[Receipt, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._taking: set[asyncio.Task[None]] = set()

    async def record(self, receipt: Receipt) -> None:
        """Return once `receipt` is recorded (its batch committed); raise if it was not."""
        loop = asyncio.get_running_loop()
        recorded: asyncio.Future[None] = loop.create_future()
        self._gathering.append((receipt, recorded))
        if len(self._gathering) >= self._most:
            self._take_now()
        elif self._timer is None:
            self._timer = loop.call_later(self._linger_s, self._take_now)
        await recorded

    def _take_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._gathering = self._gathering, []
        task = asyncio.get_running_loop().create_task(self._take(batch))
        self._taking.add(task)
        task.add_done_callback(self._taking.discard)

    async def _take(self, batch: list[tuple[Receipt, asyncio.Future[None]]]) -> None:
        try:
            await self._sink.take([receipt for receipt, _ in batch])
        except Exception as error:
            for _, recorded in batch:
                if not recorded.done():
                    recorded.set_exception(ReceiptsNotRecorded(repr(error)))
        else:
            for _, recorded in batch:
                if not recorded.done():
                    recorded.set_result(None)


class ReceiptsNotRecorded(Exception):
    """The sink raised: the receipts of its batch are not recorded."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SmppOperator:
    def __init__(
        self, name: str, options: SmppOptions, *, timeout_s: float,
        receipts: ReceiptSink | None,
        clock: Callable[[], datetime] = _utc_now,
        tls: ssl.SSLContext | None = None,  # smpps: the system's CAs unless given
        reconnect: Backoff = DEFAULT_RECONNECT,
        throttle: Backoff = DEFAULT_THROTTLE,
        link_timeout_s: float = 10.0,
        receipt_linger_s: float = RECEIPT_LINGER_S,
    ) -> None:
        self._name = name
        self._options = options
        self._timeout_s = timeout_s
        self._clock = clock
        self._batches = ReceiptBatches(receipts, receipt_linger_s) if receipts else None
        self.counts = SmppCounts()
        if options.tls and tls is None:
            tls = ssl.create_default_context()

        def session(number: int, mode: BindMode) -> Session:
            return Session(f"{name} bind {number} ({mode.name.lower()})", BindSettings(
                host=options.host, port=options.port, mode=mode,
                system_id=options.system_id, password=options.password,
                system_type=options.system_type, window=options.window,
                enquire_link_s=options.enquire_link_s, link_timeout_s=link_timeout_s,
                tls=tls, reconnect=reconnect, throttle=throttle,
            ), self._on_deliver)

        numbers = range(1, options.binds + 1)
        if options.bind is BindPlan.TRANSCEIVER:
            self.senders = [session(n, BindMode.TRANSCEIVER) for n in numbers]
            self.sessions = list(self.senders)
        else:
            self.senders = [session(n, BindMode.TRANSMITTER) for n in numbers]
            self.sessions = [*self.senders, *(session(n, BindMode.RECEIVER) for n in numbers)]

    @classmethod
    def from_url(cls, name: str, url: str, *, timeout_s: float,
                 receipts: ReceiptSink | None) -> SmppOperator:
        return cls(name, parse(url), timeout_s=timeout_s, receipts=receipts)

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        """Bind every session in the running loop, if there is one (else the first send)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        for session in self.sessions:
            session.start()

    async def close(self) -> None:
        """Unbind every session (the receipts in hand answered first)."""
        await asyncio.gather(*(session.close() for session in self.sessions))

    # ---- sending ---------------------------------------------------------------------

    async def send(self, sms: OutgoingSms) -> str:
        self.start()
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        try:
            parts = short_messages(sms.text, reference_for(sms.reference))
        except ValueError as error:
            raise self._error(ErrorClass.PERMANENT, str(error)) from None
        session = await self._sender(deadline)
        source = self._options.source_address()
        destination = self._options.destination(sms.recipient)
        validity = smpp_time(sms.valid_until) if sms.valid_until is not None else ""
        message_id = ""
        for number, part in enumerate(parts, start=1):
            pdu = SubmitSm(
                sequence_number=0,
                source_addr_ton=source.ton, source_addr_npi=source.npi, source_addr=source.addr,
                dest_addr_ton=destination.ton, dest_addr_npi=destination.npi,
                destination_addr=destination.addr,
                esm_class=part.esm_class, data_coding=part.data_coding,
                short_message=part.short_message, validity_period=validity,
                registered_delivery=REGISTERED_DELIVERY_FINAL if number == 1 else 0,
            )
            which = f"part {number} of {len(parts)}: " if len(parts) > 1 else ""
            answer = await self._submit(session, pdu, deadline, which)
            if number == 1:
                message_id = answer
        return message_id

    async def _sender(self, deadline: float) -> Session:
        if not any(s.bound for s in self.senders):
            await self._first_binds(deadline)
        live = [s for s in self.senders if s.bound]
        if not live:
            raise self._error(ErrorClass.TRANSIENT, "no bind to the SMSC is bound")
        return min(live, key=lambda s: s.outstanding)

    async def _first_binds(self, deadline: float) -> None:
        """While some bind has not been tried yet (the process just started), wait for
        one to bind or every one to have failed once."""
        waits = {asyncio.ensure_future(s.attempted.wait())
                 for s in self.senders if not s.attempted.is_set()}
        try:
            while waits and not any(s.bound for s in self.senders):
                left = deadline - asyncio.get_running_loop().time()
                done, waits = await asyncio.wait(waits, timeout=max(left, 0),
                                                 return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    return
        finally:
            for wait in waits:
                wait.cancel()

    async def _submit(self, session: Session, pdu: SubmitSm, deadline: float,
                      which: str) -> str:
        """The part's message_id, or the OperatorError its answer means."""
        try:
            answer: SubmitAnswer = await session.submit(pdu, deadline)
        except (LinkDown, SubmitTimeout) as error:
            raise self._error(ErrorClass.TRANSIENT, f"{which}{error}") from None
        except PduError as error:
            raise self._error(ErrorClass.PERMANENT, f"{which}{error}") from None
        if isinstance(answer, GenericNack):
            raise self._error(ErrorClass.TRANSIENT,
                              f"{which}generic_nack {status_name(answer.command_status)}")
        if not isinstance(answer, SubmitSmResp):  # Malformed, or not an answer to a submit
            raise self._error(ErrorClass.TRANSIENT,
                              f"{which}an unreadable answer ({type(answer).__name__})")
        outcome = classify_submit_status(answer.command_status)
        if outcome is SubmitOutcome.OK:
            return answer.message_id
        error_class = (ErrorClass.PERMANENT if outcome is SubmitOutcome.PERMANENT
                       else ErrorClass.TRANSIENT)
        raise self._error(error_class, f"{which}{status_name(answer.command_status)}")

    def _error(self, error_class: ErrorClass, reason: str) -> OperatorError:
        return OperatorError(self._name, error_class, reason)

    # ---- what the SMSC delivers ------------------------------------------------------

    async def _on_deliver(self, deliver: DeliverSm) -> int:
        """The deliver_sm_resp status: ESME_ROK once what must be recorded is."""
        if not is_receipt(deliver.esm_class):
            self.counts.mo_messages += 1
            log.info("%s: a message from a phone (MO, %d octets) acknowledged, not stored",
                     self._name, len(deliver.short_message))
            return CommandStatus.ESME_ROK
        try:
            read = read_receipt(deliver, self._options.receipt_zone)
        except UnreadableReceipt as error:
            self.counts.receipts_unreadable += 1
            log.info("%s: an unreadable receipt acknowledged: %s", self._name, error)
            return CommandStatus.ESME_ROK
        if read.reported is None:
            self.counts.receipts_not_final += 1
            log.info("%s: a receipt for %s not final (%s) acknowledged", self._name,
                     read.message_id, read.state or "no state")
            return CommandStatus.ESME_ROK
        if self._batches is None:  # this process takes no receipts (built without a sink)
            self.counts.receipts_unrecorded += 1
            return CommandStatus.ESME_ROK
        receipt = Receipt(
            about=OperatorMessage(self._name, read.message_id), reported=read.reported,
            error_code=read.error_code, done_at=read.done_at, received_at=self._clock(),
        )
        try:
            await self._batches.record(receipt)
        except ReceiptsNotRecorded as error:
            self.counts.receipts_refused += 1
            log.warning("%s: a receipt for %s not recorded (%s): the SMSC will send it again",
                        self._name, read.message_id, error)
            return CommandStatus.ESME_RX_T_APPN
        self.counts.receipts_taken += 1
        return CommandStatus.ESME_ROK
