"""`smsgw operator-sim --smpp`: an SMSC on our SMPP codec, for demos, benchmarks and tests.

It behaves as the reference SMSC of the tests (tests/peers/smsc/smsc.js, on the npm
package `smpp`) does, and the same integration tests hold both to it; it has the
HTTP simulator's controls besides.

- Binds: transmitter, receiver or transceiver with `system_id` (else ESME_RINVSYSID)
  and `password` (else ESME_RINVPASWD); a second bind on a link is ESME_RALYBND, a
  submit_sm before a transmitting bind ESME_RINVBNDSTS.
- submit_sm is decided as it arrives: a destination starting with `reject_prefix` is
  ESME_RINVDSTADR; above `throttle_above` submits taken in the last second,
  ESME_RTHROTTLED; `fail_rate` of the rest ESME_RSYSERR (transient); the others are
  taken and get a message id. The answer waits `latency_ms`.
- No dedupe: SMPP carries no reference, and an SMSC takes a resent submit_sm as a new
  message (a new id, a receipt of its own), so this one does too. It counts as a
  `duplicate` a submit taken with the source, destination, data_coding, esm_class and
  octets (a UDH's concatenation reference included) of one taken in the last ten
  minutes: what an at-least-once resend looks like.
- Receipts: a taken submit that asks for one (registered_delivery bits 0-1: 1 any
  outcome, 2 failure only) has its fate drawn from the receipt plan (receipt_plan.py;
  default all delivered, `none` never reported) and, `receipt_delay_ms` after it
  arrived, is reported as a deliver_sm (esm_class 0x04) to a bound receiver or
  transceiver, again and again (backoff, a new try after an error status, no answer
  in `ACK_TIMEOUT_S` or the link dropping) until a deliver_sm_resp says ESME_ROK.
  `receipt_format`: "10" (text, YYMMDDhhmm dates), "12" (YYMMDDhhmmss) or "tlv" (empty
  text, receipted_message_id and message_state TLVs). With `receipt_before_resp` a
  receipt's first try is written before the submit_sm_resp, when a receiving link is
  bound.
- Links: `drop_after_submits` K drops the link of the K-th submit_sm from then on,
  taken and not answered (the worst case for at-least-once); `drop_link` drops every
  link now.

Control and observation (HTTP, JSON, on the control port; the node SMSC's API):
`GET /stats`, `GET /submits` (each submit_sm as received, its answer), `GET
/messages` (the taken submits joined by their concatenation UDH, texts reassembled),
`GET /receipts` (like the HTTP simulator's, with each receipt's tries), and `POST
/control` with any of fail_rate, latency_ms, reject_prefix, throttle_above,
drop_after_submits, drop_link, receipt_format, receipt_before_resp, receipt_delay_ms.
The last RECORDED submits are kept.

    smsgw operator-sim --smpp --name A --port 2775 --control-port 9101
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from smsgw_adapters.operators.receipt_plan import ERROR_CODES, ReceiptPlan, ReceiptTally
from smsgw_adapters.operators.simulated import Behaviour
from smsgw_adapters.operators.smpp.pdu import (
    Bind,
    BindMode,
    BindResp,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    FramingError,
    GenericNack,
    Malformed,
    MessageState,
    Pdu,
    PduReader,
    SubmitSm,
    SubmitSmResp,
    Tlvs,
    Unbind,
    Unknown,
    encode,
    generic_nack,
    is_response,
    response_to,
)
from smsgw_adapters.operators.smpp.receipt_text import ESM_CLASS_RECEIPT
from smsgw_adapters.operators.smpp.text import ESM_CLASS_UDHI, read_short_message
from smsgw_core.backoff import Backoff
from smsgw_core.receipts import Reported

log = logging.getLogger("smsgw.operator_sim")

S = CommandStatus
RECEIVING = frozenset({BindMode.RECEIVER, BindMode.TRANSCEIVER})
TRANSMITTING = frozenset({BindMode.TRANSMITTER, BindMode.TRANSCEIVER})
RECEIPT_FORMATS = ("10", "12", "tlv")
RECORDED = 100_000
DUPLICATE_WINDOW_S = 600.0
ACK_TIMEOUT_S = 10.0
RETRY = Backoff(first=0.1, ceiling=1.0)
STATES = {Reported.DELIVERED: ("DELIVRD", MessageState.DELIVERED),
          Reported.UNDELIVERED: ("UNDELIV", MessageState.UNDELIVERABLE),
          Reported.EXPIRED: ("EXPIRED", MessageState.EXPIRED)}


class Control(msgspec.Struct, forbid_unknown_fields=True):
    """A POST /control body: the settings to change, and drop_link to act now."""

    fail_rate: float | None = None
    latency_ms: float | None = None
    reject_prefix: str | None = None
    throttle_above: int | None = None
    drop_after_submits: int | msgspec.UnsetType | None = msgspec.UNSET  # null: off
    drop_link: bool = False
    receipt_format: str | None = None
    receipt_before_resp: bool | None = None
    receipt_delay_ms: float | None = None


@dataclass
class SmscSettings:
    fail_rate: float = 0.0
    latency_ms: float = 0.0
    reject_prefix: str = ""
    throttle_above: int = 0  # submits taken per second; 0: no limit
    drop_after_submits: int | None = None
    receipt_format: str = "10"
    receipt_before_resp: bool = False
    receipt_delay_ms: float = 0.0

    def __post_init__(self) -> None:  # ValueError (BehaviourError) for a bad one
        Behaviour(fail_rate=self.fail_rate, latency_ms=self.latency_ms,
                  receipt_delay_ms=self.receipt_delay_ms)
        if self.throttle_above < 0:
            raise ValueError("throttle_above must not be negative")
        if self.drop_after_submits is not None and self.drop_after_submits < 1:
            raise ValueError("drop_after_submits must be at least 1")
        if self.receipt_format not in RECEIPT_FORMATS:
            raise ValueError(f"receipt_format is one of {', '.join(RECEIPT_FORMATS)}")


class Link:
    """One ESME's TCP connection: its bind, and the deliver_sm it has not answered."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.mode: BindMode | None = None
        self.system_id = ""
        self.closed = False
        self._sequence = 0
        self._waiting: dict[int, asyncio.Future[int | None]] = {}

    def write(self, pdu: Pdu) -> None:
        if not self.closed:
            self.writer.write(encode(pdu))

    def deliver(self, pdu: DeliverSm) -> asyncio.Future[int | None]:
        """Write `pdu` now; its future is the answer's status (None: the link went)."""
        self._sequence = sequence = self._sequence % 0x7FFFFFFF + 1
        answer = asyncio.get_running_loop().create_future()
        self._waiting[sequence] = answer
        answer.add_done_callback(lambda _: self._waiting.pop(sequence, None))  # timed out too
        self.write(replace(pdu, sequence_number=sequence))
        return answer

    def answered(self, pdu: DeliverSmResp | GenericNack) -> None:
        answer = self._waiting.pop(pdu.sequence_number, None)
        if answer is not None and not answer.done():
            answer.set_result(pdu.command_status)

    def close(self, abort: bool = False) -> None:
        self.closed = True
        for answer in list(self._waiting.values()):
            if not answer.done():
                answer.set_result(None)
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()


Try = tuple["asyncio.Future[int | None]", dict[str, Any]]  # a try's answer, its record


@dataclass
class Receipt:
    message_id: str
    fate: Reported
    deliver: DeliverSm
    due: float


@dataclass
class SmppSimulator:
    name: str
    system_id: str
    password: str
    settings: SmscSettings = field(default_factory=SmscSettings)
    plan: ReceiptPlan = field(default_factory=ReceiptPlan)
    seed: int | None = None
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.counts: Counter[str] = Counter()
        self.submits: deque[dict[str, Any]] = deque(maxlen=RECORDED)
        self.tally = ReceiptTally()
        self.attempts: dict[str, int] = {}
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=RECORDED)
        self.links: set[Link] = set()
        self._taken_at: deque[float] = deque()  # the last second's
        self._recent: dict[tuple[object, ...], float] = {}  # for `duplicates`
        self._receiver_bound = asyncio.Event()
        self._next_receiver = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the SMPP side ----------------------------------------------------------------

    async def serve_link(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        link = Link(writer)
        self.links.add(link)
        pdus = PduReader()
        try:
            while not link.closed and (data := await reader.read(65536)):
                for pdu in pdus.feed(data):
                    if link.closed:
                        break  # read after the link was dropped: it never arrived
                    self.handle(link, pdu)
        except (FramingError, ConnectionError) as exc:
            log.warning("SMPP link dropped: %s", exc)
        finally:
            if not link.closed:
                link.close()
            self.links.discard(link)
            self._receivers_changed()

    def handle(self, link: Link, pdu: Pdu) -> None:
        """Act on one PDU as it arrives: every decision is made before the next is read."""
        match pdu:
            case Bind():
                link.write(self._bind(link, pdu))
            case SubmitSm():
                self._submit(link, pdu)
            case DeliverSmResp() | GenericNack():
                link.answered(pdu)
            case EnquireLink():
                link.write(response_to(pdu))
            case Unbind():
                link.write(response_to(pdu))
                link.mode = None
                link.close()
            case Unknown() | Malformed() if not is_response(pdu.command_id):
                link.write(generic_nack(pdu))
            case _:
                log.info("SMPP PDU ignored: %s", type(pdu).__name__)

    def _bind(self, link: Link, bind: Bind) -> BindResp:
        if link.mode is not None:
            status = S.ESME_RALYBND
        elif bind.system_id != self.system_id:
            status = S.ESME_RINVSYSID
        elif bind.password != self.password:
            status = S.ESME_RINVPASWD
        else:
            self.counts["binds"] += 1
            link.mode, link.system_id = bind.mode, bind.system_id
            self._receivers_changed()
            return BindResp(mode=bind.mode, sequence_number=bind.sequence_number,
                            system_id=self.name[:15])
        self.counts["bind_failures"] += 1
        return BindResp(mode=bind.mode, sequence_number=bind.sequence_number,
                        command_status=status)

    def _submit(self, link: Link, submit: SubmitSm) -> None:
        self.counts["submits"] += 1
        record = self._record(link, submit)
        status = self._decide(link, submit)
        if status == S.ESME_ROK:
            record["message_id"] = f"{self.name}-{uuid.uuid4().hex[:16]}"
            self._owe_receipt(link, submit, record)  # its first try may go now
        drop_after = self.settings.drop_after_submits
        if drop_after is not None:
            self.settings.drop_after_submits = drop_after - 1 or None
            if drop_after == 1:
                self.counts["unanswered"] += 1
                self._drop(link)
                return
        answer = SubmitSmResp(sequence_number=submit.sequence_number, command_status=status,
                              message_id=record["message_id"])
        if self.settings.latency_ms:
            self._spawn(self._answer_later(link, answer, record, self.settings.latency_ms))
        else:
            link.write(answer)
            record["status"] = status

    def _decide(self, link: Link, submit: SubmitSm) -> int:
        now, settings = self.clock(), self.settings
        while self._taken_at and self._taken_at[0] <= now - 1.0:
            self._taken_at.popleft()
        if link.mode not in TRANSMITTING:
            return S.ESME_RINVBNDSTS
        if settings.reject_prefix and submit.destination_addr.startswith(settings.reject_prefix):
            self.counts["rejected"] += 1
            return S.ESME_RINVDSTADR
        if settings.throttle_above and len(self._taken_at) >= settings.throttle_above:
            self.counts["throttled"] += 1
            return S.ESME_RTHROTTLED
        if self.random.random() < settings.fail_rate:
            self.counts["failed"] += 1
            return S.ESME_RSYSERR
        self.counts["accepted"] += 1
        self._taken_at.append(now)
        self._count_duplicate(submit, now)
        return S.ESME_ROK

    def _count_duplicate(self, submit: SubmitSm, now: float) -> None:
        key = (submit.source_addr, submit.destination_addr, submit.data_coding,
               submit.esm_class, submit.short_message)
        if now - self._recent.get(key, -DUPLICATE_WINDOW_S) < DUPLICATE_WINDOW_S:
            self.counts["duplicates"] += 1
        self._recent.pop(key, None)
        self._recent[key] = now
        while len(self._recent) > RECORDED or (
            now - next(iter(self._recent.values())) > DUPLICATE_WINDOW_S
        ):
            del self._recent[next(iter(self._recent))]

    async def _answer_later(self, link: Link, answer: SubmitSmResp, record: dict[str, Any],
                            latency_ms: float) -> None:
        await asyncio.sleep(latency_ms / 1000)
        if link.closed:
            self.counts["unanswered"] += 1
            return
        link.write(answer)
        record["status"] = answer.command_status

    def _drop(self, link: Link) -> None:
        if not link.closed:
            self.counts["links_dropped"] += 1
            link.close(abort=True)

    def drop_links(self) -> None:
        for link in list(self.links):
            self._drop(link)

    # --- receipts ---------------------------------------------------------------------

    def _owe_receipt(self, link: Link, submit: SubmitSm, record: dict[str, Any]) -> None:
        """Owe the submit's receipt if it asked for one; with receipt_before_resp its first
        try is written now, before the answer."""
        wanted = submit.registered_delivery & 0x03
        if not wanted:
            return
        message_id = record["message_id"]
        fate = self.plan.draw(self.random)
        if fate is None or (wanted == 2 and fate is Reported.DELIVERED):
            self.tally.never.append(message_id)
            return
        receipt = Receipt(message_id, fate, self._receipt_pdu(submit, record, fate),
                          self.clock() + self.settings.receipt_delay_ms / 1000)
        self.tally.pending += 1
        first_try = self._try(receipt, link) if self.settings.receipt_before_resp else None
        self._spawn(self._report(receipt, first_try))

    def _receipt_pdu(self, submit: SubmitSm, record: dict[str, Any],
                     fate: Reported) -> DeliverSm:
        word, state = STATES[fate]
        message_id = record["message_id"]
        pdu = DeliverSm(sequence_number=0, source_addr=submit.destination_addr,
                        destination_addr=submit.source_addr, esm_class=ESM_CLASS_RECEIPT)
        if self.settings.receipt_format == "tlv":
            return replace(pdu, tlvs=Tlvs(receipted_message_id=message_id, message_state=state))
        digits = 10 if self.settings.receipt_format == "10" else 12
        now = datetime.now(UTC).strftime("%y%m%d%H%M%S")[:digits]
        text = (record["text"] or "")[:20].encode("ascii", "replace").decode()
        dlvrd = "001" if fate is Reported.DELIVERED else "000"
        words = (f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{now} done date:{now} "
                 f"stat:{word} err:{ERROR_CODES[fate] or '000'} text:{text}")
        return replace(pdu, short_message=words.encode("ascii")[:254])

    def _try(self, receipt: Receipt, preferred: Link | None = None) -> Try | None:
        """Write one try of `receipt` to a receiving link now; None when none is bound."""
        receivers = [link for link in self.links if link.mode in RECEIVING and not link.closed]
        if not receivers:
            return None
        if preferred not in receivers:
            self._next_receiver += 1
            preferred = receivers[self._next_receiver % len(receivers)]
        assert preferred is not None
        tries = self.attempts[receipt.message_id] = self.attempts.get(receipt.message_id, 0) + 1
        delivery = {"message_id": receipt.message_id, "attempt": tries,
                    "format": self.settings.receipt_format, "command_status": None}
        self.deliveries.append(delivery)
        return preferred.deliver(receipt.deliver), delivery

    async def _report(self, receipt: Receipt, first_try: Try | None) -> None:
        """Try `receipt` until a deliver_sm_resp acknowledges it."""
        if first_try is None:
            await asyncio.sleep(max(0.0, receipt.due - self.clock()))
        failures, this_try = 0, first_try
        while True:
            while this_try is None:
                this_try = self._try(receipt)
                if this_try is None:
                    await self._receiver_bound.wait()
            answer, delivery = this_try
            try:
                status = await asyncio.wait_for(answer, ACK_TIMEOUT_S)
            except TimeoutError:
                status = None
            delivery["command_status"] = status
            if status == S.ESME_ROK:
                break
            failures, this_try = failures + 1, None
            await asyncio.sleep(RETRY.delay(failures))
        self.tally.pending -= 1
        self.tally.reported[receipt.fate] += 1
        self.tally.by_message[receipt.message_id] = receipt.fate

    def _receivers_changed(self) -> None:
        if any(link.mode in RECEIVING and not link.closed for link in self.links):
            self._receiver_bound.set()
        else:
            self._receiver_bound.clear()

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self.drop_links()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- observation and control ------------------------------------------------------

    def _record(self, link: Link, submit: SubmitSm) -> dict[str, Any]:
        udh = None
        if submit.esm_class & ESM_CLASS_UDHI and submit.short_message:
            udh = submit.short_message[: submit.short_message[0] + 1].hex()
        try:
            part = read_short_message(submit.esm_class, submit.data_coding,
                                      submit.short_message)
            text, joined = part.text, part.concatenation
        except ValueError:
            text, joined = None, None
        record = {
            "sequence_number": submit.sequence_number, "system_id": link.system_id or None,
            "bind": f"bind_{link.mode.name.lower()}" if link.mode else None,
            "source_addr": submit.source_addr, "destination_addr": submit.destination_addr,
            "esm_class": submit.esm_class, "data_coding": submit.data_coding,
            "registered_delivery": submit.registered_delivery,
            "validity_period": submit.validity_period,
            "schedule_delivery_time": submit.schedule_delivery_time,
            "short_message": submit.short_message.hex(), "udh": udh, "text": text,
            "message_id": "", "status": None,
            "_part": (joined.reference, joined.total, joined.seq) if joined else None,
        }
        self.submits.append(record)
        return record

    def stats(self) -> dict[str, Any]:
        names = ("binds", "bind_failures", "submits", "accepted", "duplicates", "rejected",
                 "throttled", "failed", "links_dropped", "unanswered")
        receipts = {**self.tally.stats(), "sent": sum(self.attempts.values()),
                    "acked": len(self.tally.by_message)}
        return {**{name: self.counts[name] for name in names}, "receipts": receipts}

    def submit_listing(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in record.items() if k != "_part"} for record in self.submits]

    def messages(self) -> list[dict[str, Any]]:
        """The taken submits, the parts of one concatenated message joined."""
        found: list[dict[str, Any]] = []
        open_: dict[tuple[str, str, int], dict[str, Any]] = {}
        for record in self.submits:
            if not record["message_id"]:
                continue
            if record["_part"] is None:
                found.append({"source_addr": record["source_addr"],
                              "destination_addr": record["destination_addr"],
                              "reference": None, "total": 1, "parts": [record["message_id"]],
                              "text": record["text"], "complete": True})
                continue
            reference, total, seq = record["_part"]
            key = (record["source_addr"], record["destination_addr"], reference)
            message = open_.get(key)
            if message is None or message["complete"]:
                message = open_[key] = {
                    "source_addr": key[0], "destination_addr": key[1], "reference": reference,
                    "total": total, "parts": [None] * total, "texts": [""] * total,
                    "complete": False}
                found.append(message)
            if 1 <= seq <= len(message["parts"]):
                message["parts"][seq - 1] = record["message_id"]
                message["texts"][seq - 1] = record["text"] or ""
            message["complete"] = all(message["parts"])
        for message in found:
            if "texts" in message:
                message["text"] = "".join(message.pop("texts"))
        return found

    def receipts(self) -> dict[str, Any]:
        pending = [mid for mid in self.attempts if mid not in self.tally.by_message]
        return {**self.tally.listing(), "pending": pending, "attempts": dict(self.attempts),
                "deliveries": list(self.deliveries)}

    def control(self, change: Control) -> dict[str, Any]:
        """Apply `change` (ValueError, nothing changed, for a bad one); the settings."""
        updates: dict[str, Any] = {
            name: getattr(change, name) for name in SmscSettings.__dataclass_fields__
            if name != "drop_after_submits" and getattr(change, name) is not None}
        if change.drop_after_submits is not msgspec.UNSET:
            updates["drop_after_submits"] = change.drop_after_submits
        self.settings = replace(self.settings, **updates)
        if change.drop_link:
            self.drop_links()
        return self.settings_view()

    def settings_view(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self.settings)}


def control_app(simulator: SmppSimulator) -> web.Application:
    async def stats(_: web.Request) -> web.Response:
        return web.json_response(simulator.stats())

    async def submits(_: web.Request) -> web.Response:
        return web.json_response({"submits": simulator.submit_listing()})

    async def messages(_: web.Request) -> web.Response:
        return web.json_response({"messages": simulator.messages()})

    async def receipts(_: web.Request) -> web.Response:
        return web.json_response(simulator.receipts())

    async def control(request: web.Request) -> web.Response:
        try:
            change = msgspec.json.decode(await request.read(), type=Control)
            return web.json_response(simulator.control(change))
        except (msgspec.DecodeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    app = web.Application()
    app.add_routes([web.get("/stats", stats), web.get("/submits", submits),
                    web.get("/messages", messages), web.get("/receipts", receipts),
                    web.post("/control", control)])
    return app


@contextlib.asynccontextmanager
async def serving(simulator: SmppSimulator, host: str = "127.0.0.1", port: int = 0,
                  control_port: int = 0) -> AsyncIterator[tuple[int, int]]:
    """Serve SMPP and the control API in this loop; yields their ports (0: a free one)."""
    smpp = await asyncio.start_server(simulator.serve_link, host, port)
    runner = web.AppRunner(control_app(simulator), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, control_port)
        await site.start()
        yield smpp.sockets[0].getsockname()[1], runner.addresses[0][1]
    finally:
        smpp.close()
        await simulator.close()
        await runner.cleanup()
        await smpp.wait_closed()


async def run_smpp_simulator(simulator: SmppSimulator, host: str = "127.0.0.1",
                             port: int = 2775, control_port: int = 0) -> None:
    """Serve until SIGINT/SIGTERM; prints `operator-sim NAME listening on
    smpp://HOST:PORT control on http://HOST:PORT` once both accept connections."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serving(simulator, host, port, control_port) as (smpp_port, http_port):
        print(f"operator-sim {simulator.name} listening on smpp://{host}:{smpp_port} "
              f"control on http://{host}:{http_port}", flush=True)
        await stop.wait()
