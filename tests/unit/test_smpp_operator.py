"""The SMPP operator against the tiny SMSC of test_smpp_session.py (a real localhost socket).

Sending: the parts the customer was charged for, addressed as the URL says, the
first part's id kept, each status as the table says; several binds; receipts
handed to a ReceiptSink and acknowledged only once it has recorded them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_smpp_session import QUICK, Answer, SmscLink, TinySmsc, until

from smsgw_adapters.operators.smpp.operator import SmppOperator
from smsgw_adapters.operators.smpp.pdu import (
    BindMode,
    CommandId,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    GenericNack,
    MessageState,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Tlvs,
    Unbind,
    Unknown,
    smpp_time,
)
from smsgw_adapters.operators.smpp.text import (
    DATA_CODING_GSM7,
    DATA_CODING_UCS2,
    ESM_CLASS_UDHI,
    read_short_message,
    reference_for,
)
from smsgw_adapters.operators.smpp.url import parse
from smsgw_app.assembly import kept_receipts
from smsgw_app.config import Settings
from smsgw_app.container import Container
from smsgw_core.backoff import Backoff
from smsgw_core.operators import ErrorClass, OperatorError, OutgoingSms
from smsgw_core.receipts import OperatorMessage, Receipt, ReceiptPolicy, Reported

LONG_TEXT = "Your parcel is on its way. " * 12  # 324 GSM-7 characters: 3 segments
NOW = datetime(2024, 3, 9, 12, 0, tzinfo=UTC)


class RecordingSink:
    """A ReceiptSink that records each batch it takes; it can be made to wait or to fail."""

    def __init__(self) -> None:
        self.batches: list[list[Receipt]] = []
        self.failures = 0
        self.gate: asyncio.Event | None = None
        self.waiting = 0  # takes waiting at the gate

    async def take(self, receipts: Sequence[Receipt]) -> None:
        if self.gate is not None:
            self.waiting += 1
            await self.gate.wait()
            self.waiting -= 1
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the database is away")
        self.batches.append(list(receipts))

    @property
    def taken(self) -> list[Receipt]:
        return [receipt for batch in self.batches for receipt in batch]


def an_operator(smsc: TinySmsc, query: str = "", *, receipts: RecordingSink | None = None,
                timeout_s: float = 5.0, **settings: object) -> SmppOperator:
    options = parse(f"smpp://gw:secret@127.0.0.1:{smsc.port}?{query}")
    return SmppOperator("MCI", options, timeout_s=timeout_s, receipts=receipts,
                        clock=lambda: NOW, reconnect=QUICK, link_timeout_s=2.0,
                        throttle=Backoff(first=0.01, ceiling=0.08),
                        **settings)  # type: ignore[arg-type]


async def bound(operator: SmppOperator) -> SmppOperator:
    operator.start()
    await until(lambda: all(s.bound for s in operator.sessions), what="the binds")
    return operator


@pytest.fixture
async def smsc() -> AsyncIterator[TinySmsc]:
    async with TinySmsc() as running:
        yield running


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def operator(smsc: TinySmsc, sink: RecordingSink) -> AsyncIterator[SmppOperator]:
    started = await bound(an_operator(smsc, "source=+9810001", receipts=sink))
    yield started
    await started.close()


def sms(text: str = "Hello", recipient: str = "+989121234567", reference: str = "r1",
        ) -> OutgoingSms:
    return OutgoingSms(recipient=recipient, text=text, reference=reference)


# ---- sending ------------------------------------------------------------------------------


async def test_a_short_text_is_one_submit_sm_asking_for_a_receipt(
        smsc: TinySmsc, operator: SmppOperator) -> None:
    assert await operator.send(sms("Hello {world}")) == "m1"
    [submit] = smsc.submits
    assert (submit.source_addr_ton, submit.source_addr_npi, submit.source_addr) == (
        1, 1, "9810001")
    assert (submit.dest_addr_ton, submit.dest_addr_npi, submit.destination_addr) == (
        1, 1, "989121234567")
    assert (submit.esm_class, submit.data_coding, submit.registered_delivery) == (
        0, DATA_CODING_GSM7, 1)
    assert submit.short_message == b"Hello \x1b\x28world\x1b\x29"  # the escape table
    assert submit.validity_period == ""


async def test_a_long_text_goes_as_the_parts_charged_and_its_id_is_the_first_s(
        smsc: TinySmsc, operator: SmppOperator) -> None:
    assert await operator.send(sms(LONG_TEXT, reference="ref-7")) == "m1"
    parts = [read_short_message(s.esm_class, s.data_coding, s.short_message)
             for s in smsc.submits]
    assert "".join(part.text for part in parts) == LONG_TEXT
    assert [(p.concatenation.reference, p.concatenation.total, p.concatenation.seq)
            for p in parts if p.concatenation] == [(reference_for("ref-7"), 3, n)
                                                   for n in (1, 2, 3)]
    assert [s.esm_class & ESM_CLASS_UDHI for s in smsc.submits] == [ESM_CLASS_UDHI] * 3
    # Only the first part asks for a receipt: the one id the gateway keeps.
    assert [s.registered_delivery for s in smsc.submits] == [1, 0, 0]


async def test_a_text_outside_gsm7_goes_as_ucs2(smsc: TinySmsc,
                                               operator: SmppOperator) -> None:
    await operator.send(sms("سلام 👋"))
    [submit] = smsc.submits
    assert submit.data_coding == DATA_CODING_UCS2
    assert submit.short_message == "سلام 👋".encode("utf-16-be")


async def test_validity_goes_as_validity_period_in_utc(smsc: TinySmsc,
                                                     operator: SmppOperator) -> None:
    valid_until = datetime(2024, 3, 9, 15, 30, tzinfo=timezone(timedelta(hours=3, minutes=30)))
    await operator.send(OutgoingSms("+989121234567", "Hi", "r1", valid_until=valid_until))
    assert smsc.submits[0].validity_period == smpp_time(valid_until) == "240309120000000+"


@pytest.mark.parametrize(("query", "recipient", "source", "destination"), [
    ("source=ACME", "09121234567", (5, 0, "ACME"), (0, 1, "09121234567")),
    ("source=3000", "+989121234567", (0, 1, "3000"), (1, 1, "989121234567")),
    ("", "+989121234567", (0, 0, ""), (1, 1, "989121234567")),
    ("source=+9810001&source_ton=2&source_npi=9&dest_ton=2&dest_npi=8", "+989121234567",
     (2, 9, "9810001"), (2, 8, "989121234567")),
])
async def test_addresses_take_their_ton_and_npi_from_their_form_unless_the_url_fixes_them(
        smsc: TinySmsc, query: str, recipient: str, source: tuple[int, int, str],
        destination: tuple[int, int, str]) -> None:
    operator = an_operator(smsc, query)
    await operator.send(sms(recipient=recipient))
    [s] = smsc.submits
    assert (s.source_addr_ton, s.source_addr_npi, s.source_addr) == source
    assert (s.dest_addr_ton, s.dest_addr_npi, s.destination_addr) == destination
    await operator.close()


def refused(status: int) -> Answer:
    return SubmitSmResp(sequence_number=0, command_status=status)


@pytest.mark.parametrize(("answer", "error_class", "reason"), [
    (refused(CommandStatus.ESME_RINVDSTADR), ErrorClass.PERMANENT, "ESME_RINVDSTADR"),
    (refused(CommandStatus.ESME_RINVSRCADR), ErrorClass.PERMANENT, "ESME_RINVSRCADR"),
    (refused(CommandStatus.ESME_RSYSERR), ErrorClass.TRANSIENT, "ESME_RSYSERR"),
    (refused(CommandStatus.ESME_RSUBMITFAIL), ErrorClass.TRANSIENT, "ESME_RSUBMITFAIL"),
    (refused(0x0400), ErrorClass.TRANSIENT, "0x00000400"),
    (GenericNack(sequence_number=0, command_status=CommandStatus.ESME_RINVCMDLEN),
     ErrorClass.TRANSIENT, "generic_nack ESME_RINVCMDLEN"),
    # A submit_sm_resp whose message_id has no NUL: a body that cannot be read.
    (Unknown(command_id=CommandId.SUBMIT_SM_RESP, sequence_number=0, body=b"m1"),
     ErrorClass.TRANSIENT, "unreadable"),
])
async def test_each_answer_is_the_failure_the_table_says(
        smsc: TinySmsc, operator: SmppOperator, answer: Answer, error_class: ErrorClass,
        reason: str) -> None:
    smsc.answer = lambda submit: answer
    with pytest.raises(OperatorError) as raised:
        await operator.send(sms())
    assert (raised.value.operator, raised.value.error_class) == ("MCI", error_class)
    assert reason in raised.value.reason


async def test_a_part_refused_fails_the_message_naming_the_part(
        smsc: TinySmsc, operator: SmppOperator) -> None:
    smsc.answer = lambda submit: (refused(CommandStatus.ESME_RINVDCS) if len(smsc.submits) == 2
                                  else smsc.accept(submit))
    with pytest.raises(OperatorError) as raised:
        await operator.send(sms(LONG_TEXT))
    assert raised.value.error_class is ErrorClass.PERMANENT
    assert raised.value.reason == "part 2 of 3: ESME_RINVDCS"
    assert len(smsc.submits) == 2  # the third is not sent


async def test_a_throttled_bind_slows_down_and_then_delivers_everything(
        smsc: TinySmsc, operator: SmppOperator) -> None:
    refusals = iter([CommandStatus.ESME_RTHROTTLED] * 6 + [CommandStatus.ESME_RMSGQFUL] * 2)

    def answer(submit: SubmitSm) -> Answer:
        status = next(refusals, CommandStatus.ESME_ROK)
        return refused(status) if status else smsc.accept(submit)

    smsc.answer = answer
    ids = await asyncio.gather(*(operator.send(sms(f"text {n}", reference=f"r{n}"))
                                 for n in range(5)))
    assert len(set(ids)) == 5
    taken = [s.short_message for s in smsc.submits if s.short_message]
    assert sorted(set(taken)) == sorted(f"text {n}".encode() for n in range(5))
    assert operator.sessions[0].throttled == 8


async def test_throttling_past_the_send_s_timeout_is_transient(smsc: TinySmsc) -> None:
    smsc.answer = lambda submit: refused(CommandStatus.ESME_RTHROTTLED)
    operator = await bound(an_operator(smsc, timeout_s=0.3))
    with pytest.raises(OperatorError) as raised:
        await operator.send(sms())
    assert raised.value.error_class is ErrorClass.TRANSIENT
    assert len(smsc.submits) >= 1
    await operator.close()


async def test_no_answer_within_the_timeout_is_transient(smsc: TinySmsc) -> None:
    smsc.answer = lambda submit: None
    operator = await bound(an_operator(smsc, timeout_s=0.1))
    with pytest.raises(OperatorError) as raised:
        await operator.send(sms())
    assert raised.value.error_class is ErrorClass.TRANSIENT
    assert "no submit_sm_resp" in raised.value.reason
    await operator.close()


async def test_with_no_bind_bound_a_send_fails_transient_at_once() -> None:
    async with TinySmsc(password="not ours") as smsc:
        operator = an_operator(smsc, timeout_s=30.0)
        # The first send waits for the first bind to be tried, no longer.
        with pytest.raises(OperatorError) as raised:
            await operator.send(sms())
        assert raised.value.error_class is ErrorClass.TRANSIENT
        assert raised.value.reason == "no bind to the SMSC is bound"
        assert smsc.submits == []
        await operator.close()


async def test_an_smsc_that_is_not_there_is_transient() -> None:
    gone = SmppOperator("MCI", parse("smpp://gw:secret@127.0.0.1:1"), timeout_s=5.0,
                        receipts=None, reconnect=QUICK)
    with pytest.raises(OperatorError) as raised:
        await gone.send(sms())
    assert raised.value.error_class is ErrorClass.TRANSIENT
    await gone.close()


async def test_sends_in_flight_on_a_dropped_link_fail_transient_and_then_go_again(
        smsc: TinySmsc, operator: SmppOperator) -> None:
    smsc.answer = lambda submit: None
    sends = [asyncio.create_task(operator.send(sms(reference=f"r{n}"))) for n in range(4)]
    await until(lambda: len(smsc.held) == 4)
    smsc.links[0].drop()
    for send in sends:
        with pytest.raises(OperatorError) as raised:
            await send
        assert raised.value.error_class is ErrorClass.TRANSIENT
    await until(lambda: operator.sessions[0].bound, what="binding again")
    smsc.answer = smsc.accept
    assert await operator.send(sms(reference="r0")) == "m1"  # the first the SMSC accepted


async def test_sends_spread_over_the_binds_by_what_each_has_outstanding(
        smsc: TinySmsc, sink: RecordingSink) -> None:
    operator = await bound(an_operator(smsc, "binds=3", receipts=sink))
    smsc.answer = lambda submit: None
    sends = [asyncio.create_task(operator.send(sms(reference=f"r{n}"))) for n in range(6)]
    await until(lambda: len(smsc.held) == 6)
    assert sorted(len(link.received) for link in smsc.bound) == [3, 3, 3]  # bind + 2 submits
    smsc.release_held()
    assert len(set(await asyncio.gather(*sends))) == 6
    await operator.close()
    assert len(smsc.received(Unbind)) == 3


async def test_transmitter_and_receiver_binds_send_on_one_and_receive_on_the_other(
        smsc: TinySmsc, sink: RecordingSink) -> None:
    operator = await bound(an_operator(smsc, "bind=transmitter+receiver", receipts=sink))
    modes = {link.bound_as: link for link in smsc.bound}
    assert set(modes) == {BindMode.TRANSMITTER, BindMode.RECEIVER}
    message_id = await operator.send(sms())
    assert [type(p) for p in modes[BindMode.TRANSMITTER].received][-1] is SubmitSm
    answer = await modes[BindMode.RECEIVER].request(receipt(f"id:{message_id} stat:DELIVRD"))
    assert answer.command_status == CommandStatus.ESME_ROK
    assert [r.about.message_id for r in sink.taken] == [message_id]
    await operator.close()


# ---- receipts -----------------------------------------------------------------------------


def receipt(text: str = "", **tlvs: object) -> DeliverSm:
    return DeliverSm(sequence_number=0, esm_class=0x04, short_message=text.encode(),
                     tlvs=Tlvs(**tlvs))  # type: ignore[arg-type]


def receiver(smsc: TinySmsc) -> SmscLink:
    return next(link for link in smsc.bound if link.bound_as is not BindMode.TRANSMITTER)


async def test_a_final_receipt_is_acknowledged_once_the_sink_recorded_it(
        smsc: TinySmsc, operator: SmppOperator, sink: RecordingSink) -> None:
    sink.gate = asyncio.Event()
    link = receiver(smsc)
    answer = asyncio.create_task(link.request(receipt(
        "id:m1 sub:001 dlvrd:001 submit date:2403091335 done date:240309133612 "
        "stat:UNDELIV err:0x0B text:Hello")))
    await until(lambda: sink.waiting == 1, what="the sink taking it")
    # Whatever the operator wrote before this answer has reached the SMSC (one stream).
    await link.request(EnquireLink(sequence_number=0))
    assert not any(isinstance(pdu, DeliverSmResp) for pdu in link.received)
    sink.gate.set()
    assert (await answer).command_status == CommandStatus.ESME_ROK
    assert sink.taken == [Receipt(
        about=OperatorMessage("MCI", "m1"), reported=Reported.UNDELIVERED, error_code="0x0B",
        done_at=datetime(2024, 3, 9, 13, 36, 12, tzinfo=UTC), received_at=NOW)]
    assert operator.counts.receipts_taken == 1


async def test_a_receipt_the_sink_fails_on_is_refused_and_taken_when_sent_again(
        smsc: TinySmsc, operator: SmppOperator, sink: RecordingSink) -> None:
    sink.failures = 1
    link = receiver(smsc)
    first = await link.request(receipt("id:m9 stat:DELIVRD"))
    assert first.command_status == CommandStatus.ESME_RX_T_APPN
    assert sink.taken == []
    again = await link.request(receipt("id:m9 stat:DELIVRD"))
    assert again.command_status == CommandStatus.ESME_ROK
    assert [(r.about.message_id, r.reported) for r in sink.taken] == [
        ("m9", Reported.DELIVERED)]
    assert (operator.counts.receipts_refused, operator.counts.receipts_taken) == (1, 1)


async def test_receipts_arriving_together_are_taken_in_one_batch(
        smsc: TinySmsc, sink: RecordingSink) -> None:
    operator = await bound(an_operator(smsc, receipts=sink, receipt_linger_s=0.2))
    link = receiver(smsc)
    answers = await asyncio.gather(*(link.request(receipt(f"id:m{n} stat:DELIVRD"))
                                     for n in range(5)))
    assert [a.command_status for a in answers] == [CommandStatus.ESME_ROK] * 5
    assert [[r.about.message_id for r in batch] for batch in sink.batches] == [
        [f"m{n}" for n in range(5)]]
    await operator.close()


async def test_a_receipt_in_tlvs_only_is_taken_and_its_zone_is_the_url_s(
        smsc: TinySmsc, sink: RecordingSink) -> None:
    operator = await bound(an_operator(smsc, "receipt_zone=+03:30", receipts=sink))
    link = receiver(smsc)
    await link.request(receipt(receipted_message_id="abc", message_state=MessageState.EXPIRED))
    await link.request(receipt("id:def done date:2403091336 stat:DELIVRD"))
    assert [(r.about.message_id, r.reported, r.done_at) for r in sink.taken] == [
        ("abc", Reported.EXPIRED, None),
        ("def", Reported.DELIVERED, datetime(2024, 3, 9, 10, 6, tzinfo=UTC))]
    await operator.close()


async def test_what_is_not_a_final_receipt_is_acknowledged_and_counted(
        smsc: TinySmsc, operator: SmppOperator, sink: RecordingSink) -> None:
    link = receiver(smsc)
    mo = DeliverSm(sequence_number=0, esm_class=0, short_message=b"STOP")
    answers: list[Pdu] = [
        await link.request(receipt("id:m1 stat:ENROUTE")),
        await link.request(receipt("id:m1 stat:ACCEPTD")),
        await link.request(receipt("stat:DELIVRD")),  # names no message
        await link.request(mo),
    ]
    assert [a.command_status for a in answers] == [CommandStatus.ESME_ROK] * 4
    assert sink.batches == []
    counts = operator.counts
    assert (counts.receipts_not_final, counts.receipts_unreadable, counts.mo_messages) == (
        2, 1, 1)


async def test_a_receipt_may_come_before_the_answer_to_its_submit(
        smsc: TinySmsc, operator: SmppOperator, sink: RecordingSink) -> None:
    smsc.answer = lambda submit: None
    send = asyncio.create_task(operator.send(sms()))
    await until(lambda: len(smsc.held) == 1)
    link = receiver(smsc)
    assert (await link.request(receipt("id:m1 stat:DELIVRD"))).command_status == 0
    smsc.release_held()
    assert await send == "m1"
    assert [r.about for r in sink.taken] == [OperatorMessage("MCI", "m1")]


async def test_started_without_a_send_it_binds_and_takes_receipts(
        smsc: TinySmsc, sink: RecordingSink) -> None:
    operator = await bound(an_operator(smsc, receipts=sink))
    await receiver(smsc).request(receipt("id:x1 stat:DELIVRD"))
    assert [r.about.message_id for r in sink.taken] == ["x1"]
    assert smsc.submits == []
    await operator.close()


# ---- in the process -----------------------------------------------------------------------


async def test_a_worker_s_container_binds_as_it_builds_and_unbinds_at_its_end(
        smsc: TinySmsc, tmp_path: Path) -> None:
    settings = Settings.from_env({
        "SMSGW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'smpp.db'}",
        "SMSGW_OPERATORS": f"MCI=smpp://gw:secret@127.0.0.1:{smsc.port}?tps=50&binds=2",
    })
    container = Container(settings=settings)
    await container.http_session.init()  # type: ignore[misc]
    container.deliverer()  # what a worker builds at its start
    await until(lambda: len(smsc.bound) == 2, what="two binds without a send")
    assert kept_receipts(settings, ReceiptPolicy()) is not None
    await container.shutdown_resources()  # type: ignore[misc]
    assert len(smsc.received(Unbind)) == 2
    await until(lambda: not smsc.bound, what="the links closed")
