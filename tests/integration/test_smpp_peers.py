"""The two SMSCs of the SMPP tests, talked to by a minimal ESME on our codec.

"node" is the reference peer nobody here wrote (node-smpp, tests/peers/smsc);
"ours" is `smsgw operator-sim --smpp`. Every test that both can pass runs
against both: what node-smpp reads from our PDUs, and writes back, is what our
simulator must read and write too. The ESME (tests/peers/esme.py) stands in for
the adapter; the peers say over their control API what they received.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from smsgw_adapters.operators.smpp.pdu import (
    BindMode,
    CommandStatus,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    SubmitSm,
    SubmitSmResp,
    Unknown,
    smpp_time,
)
from smsgw_adapters.operators.smpp.receipt_text import read_receipt
from smsgw_adapters.operators.smpp.text import (
    DATA_CODING_GSM7,
    DATA_CODING_UCS2,
    ESM_CLASS_UDHI,
    encode_gsm7,
    encode_ucs2,
    short_messages,
)
from smsgw_core.receipts import Reported
from tests.integration.harness import SMSGW
from tests.peers.esme import Esme, connected, kinds
from tests.peers.smsc_peer import KINDS, PASSWORD, SYSTEM_ID, SmscPeer, smsc

pytestmark = pytest.mark.slow

S = CommandStatus
SOURCE = "98100"
GSM7_TEXT = "Hi @home: {ok} [1] ~2 ^3 |4 \\5 €6 £7 è"
UCS2_TEXT = "سلام دنیا 😀"
LONG_TEXT = "".join(f"part {n:03d} of a long GSM-7 text; " for n in range(11))  # 341 chars
POLL_S = 20.0


@pytest.fixture(params=KINDS)
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmscPeer]:
    with smsc(request.param, tmp_path) as started:
        yield started


async def eventually(predicate: Callable[[], Any]) -> Any:
    """Poll `predicate` (the peers' state) until it holds, the loop free in between; a
    bound (POLL_S) only so that a missing event fails instead of hanging."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + POLL_S
    while not (result := predicate()):
        assert loop.time() < deadline, f"condition not met within {POLL_S} s"
        await asyncio.sleep(0.05)
    return result


@contextlib.asynccontextmanager
async def bound(peer: SmscPeer, mode: BindMode = BindMode.TRANSCEIVER) -> AsyncIterator[Esme]:
    """An ESME connected to `peer` and bound with the right password."""
    async with connected(peer.host, peer.port) as esme:
        answer = await esme.bind(peer.system_id, peer.password, mode)
        assert answer.command_status == S.ESME_ROK
        yield esme


def texts(esme: Esme, text: str, destination: str, reference: int = 0x42,
          **fields: Any) -> list[SubmitSm]:
    """The submit_sm of `text`, one per part charged."""
    return [esme.submit_sm(source_addr=SOURCE, destination_addr=destination,
                           esm_class=part.esm_class, data_coding=part.data_coding,
                           short_message=part.short_message, **fields)
            for part in short_messages(text, reference)]


def one(esme: Esme, text: str, destination: str, **fields: Any) -> SubmitSm:
    [submit] = texts(esme, text, destination, **fields)
    return submit


def statuses(answers: list[SubmitSmResp]) -> list[int]:
    return [answer.command_status for answer in answers]


# --- binds ------------------------------------------------------------------------------


async def test_each_bind_mode_is_taken_with_the_password(peer: SmscPeer) -> None:
    for mode in BindMode:
        async with connected(peer.host, peer.port) as esme:
            answer = await esme.bind(SYSTEM_ID, PASSWORD, mode)
            assert (answer.mode, answer.command_status) == (mode, S.ESME_ROK)
            assert answer.system_id  # the SMSC names itself

    assert peer.stats()["binds"] == 3


async def test_a_wrong_password_or_system_id_is_refused_and_nothing_is_taken(
    peer: SmscPeer,
) -> None:
    async with connected(peer.host, peer.port) as esme:
        wrong_password = await esme.bind(SYSTEM_ID, "nope")
        wrong_system = await esme.bind("stranger", PASSWORD)
        [unbound] = await esme.submit(*texts(esme, "hi", "0912000"))

    assert wrong_password.command_status == S.ESME_RINVPASWD
    assert wrong_system.command_status == S.ESME_RINVSYSID
    assert unbound.command_status == S.ESME_RINVBNDSTS
    stats = peer.stats()
    assert (stats["binds"], stats["bind_failures"], stats["accepted"]) == (0, 2, 0)


async def test_enquire_link_unknown_commands_and_unbind_are_answered(peer: SmscPeer) -> None:
    async with bound(peer) as esme:
        alive = await esme.request(EnquireLink(sequence_number=esme.next_sequence()))
        unknown = await esme.request(Unknown(command_id=0x000000FF,
                                             sequence_number=esme.next_sequence()))
        await esme.unbind()
        await esme.dropped()  # the SMSC closes the link after unbind_resp

    assert isinstance(alive, EnquireLinkResp)
    assert isinstance(unknown, GenericNack)
    assert unknown.command_status == S.ESME_RINVCMDID


# --- texts ------------------------------------------------------------------------------


async def test_a_gsm7_text_arrives_as_unpacked_septets_with_its_escapes(peer: SmscPeer) -> None:
    validity = smpp_time(datetime(2031, 12, 31, 23, 59, 50, tzinfo=UTC))
    async with bound(peer) as esme:
        submit = texts(esme, GSM7_TEXT, "09120000001", registered_delivery=1,
                       validity_period=validity)
        [answer] = await esme.submit(*submit)

    [record] = peer.submits()
    assert answer.command_status == S.ESME_ROK and answer.message_id == record["message_id"]
    assert record["short_message"] == encode_gsm7(GSM7_TEXT).hex()
    assert (record["data_coding"], record["esm_class"], record["udh"]) == (DATA_CODING_GSM7, 0,
                                                                           None)
    assert record["text"] == GSM7_TEXT  # as the SMSC reads GSM-7
    assert (record["source_addr"], record["destination_addr"]) == (SOURCE, "09120000001")
    assert (record["registered_delivery"], record["validity_period"]) == (1, validity)
    assert (record["sequence_number"], record["status"]) == (submit[0].sequence_number, 0)
    assert (record["system_id"], record["bind"]) == (SYSTEM_ID, "bind_transceiver")


async def test_a_ucs2_text_arrives_as_utf16(peer: SmscPeer) -> None:
    async with bound(peer) as esme:
        [answer] = await esme.submit(*texts(esme, UCS2_TEXT, "09120000002"))

    [record] = peer.submits()
    assert answer.command_status == S.ESME_ROK
    assert record["short_message"] == encode_ucs2(UCS2_TEXT).hex()
    assert (record["data_coding"], record["udh"]) == (DATA_CODING_UCS2, None)
    assert record["text"] == UCS2_TEXT
    [message] = peer.messages()
    assert (message["text"], message["parts"]) == (UCS2_TEXT, [answer.message_id])


async def test_a_three_part_gsm7_text_arrives_as_three_parts_behind_one_udh_reference(
    peer: SmscPeer,
) -> None:
    async with bound(peer) as esme:
        submits = texts(esme, LONG_TEXT, "09120000003", reference=0x42)
        answers = await esme.submit(*submits)

    assert len(submits) == 3 and statuses(answers) == [S.ESME_ROK] * 3
    records = peer.submits()
    assert [record["udh"] for record in records] == [f"0500034203{seq:02x}" for seq in (1, 2, 3)]
    assert {(r["esm_class"], r["data_coding"]) for r in records} == {(ESM_CLASS_UDHI,
                                                                      DATA_CODING_GSM7)}
    assert [r["short_message"] for r in records] == [s.short_message.hex() for s in submits]
    [message] = peer.messages()
    assert (message["reference"], message["total"], message["complete"]) == (0x42, 3, True)
    assert message["parts"] == [answer.message_id for answer in answers]
    assert message["text"] == LONG_TEXT


# --- refusals ---------------------------------------------------------------------------


async def test_above_the_throttle_the_submits_are_throttled_then_taken_once_it_lifts(
    peer: SmscPeer,
) -> None:
    peer.control(throttle_above=3)
    async with bound(peer) as esme:
        first = await esme.submit(*[one(esme, f"burst {n}", f"0912100000{n}") for n in range(10)])
        throttled = [n for n, answer in enumerate(first) if answer.command_status]
        peer.control(throttle_above=0)
        again = await esme.submit(*[one(esme, f"burst {n}", f"0912100000{n}") for n in throttled])

    # Decided in the order they arrived (one write): the first three taken, the rest not.
    assert statuses(first) == [S.ESME_ROK] * 3 + [S.ESME_RTHROTTLED] * 7
    assert all(answer.message_id == "" for answer in first[3:])
    assert statuses(again) == [S.ESME_ROK] * 7
    stats = peer.stats()
    assert (stats["accepted"], stats["throttled"]) == (10, 7)


async def test_a_rejected_prefix_is_an_invalid_destination_and_a_failure_a_system_error(
    peer: SmscPeer,
) -> None:
    peer.control(reject_prefix="0999")
    async with bound(peer) as esme:
        answers = await esme.submit(*texts(esme, "a", "09990000001"),
                                    *texts(esme, "b", "09120000001"))
        peer.control(fail_rate=1.0)
        [failed] = await esme.submit(*texts(esme, "c", "09120000002"))

    assert statuses(answers) == [S.ESME_RINVDSTADR, S.ESME_ROK]
    assert failed.command_status == S.ESME_RSYSERR
    stats = peer.stats()
    assert (stats["rejected"], stats["failed"], stats["accepted"]) == (1, 1, 1)


# --- dropped links ----------------------------------------------------------------------


async def test_drop_after_submits_takes_the_kth_leaves_it_unanswered_and_drops_the_link(
    peer: SmscPeer,
) -> None:
    peer.control(drop_after_submits=3)
    async with bound(peer) as esme:
        pending = esme.send(*[one(esme, f"window {n}", f"0912200000{n}") for n in range(5)])
        await esme.dropped()
    answered = [answer for future in pending if future.done()
                and isinstance(answer := future.result(), SubmitSmResp)]

    records = peer.submits()
    assert len(records) == 3  # what came after the K-th never arrived
    assert [record["status"] for record in records] == [0, 0, None]
    assert all(record["message_id"] for record in records)  # the third was taken all the same
    assert len(answered) <= 2 and statuses(answered) == [S.ESME_ROK] * len(answered)
    assert peer.stats()["links_dropped"] == 1
    async with bound(peer) as esme:  # once only: the next link keeps going
        assert statuses(await esme.submit(*texts(esme, "after", "09122000009"))) == [0]


async def test_drop_link_mid_window_leaves_the_taken_submits_unanswered(peer: SmscPeer) -> None:
    peer.control(latency_ms=600_000)  # no answer comes before the drop
    async with bound(peer) as esme:
        pending = esme.send(*[one(esme, f"window {n}", f"0912300000{n}") for n in range(5)])
        await eventually(lambda: peer.stats()["submits"] == 5)
        peer.control(drop_link=True)
        await esme.dropped()

    assert not any(future.done() for future in pending)
    records = peer.submits()
    assert [record["status"] for record in records] == [None] * 5
    assert all(record["message_id"] for record in records)
    assert peer.stats()["links_dropped"] == 1


# --- receipts ---------------------------------------------------------------------------


def nack_first_try() -> Callable[[DeliverSm], int | None]:
    """Answer each receipt's first try ESME_RX_T_APPN (try later), the next ones ESME_ROK."""
    tried: set[str] = set()

    def answer(deliver: DeliverSm) -> int | None:
        message_id = read_receipt(deliver).message_id
        if message_id in tried:
            return S.ESME_ROK
        tried.add(message_id)
        return S.ESME_RX_T_APPN

    return answer


@pytest.mark.parametrize("receipt_format", ["10", "12", "tlv"])
async def test_a_receipt_arrives_in_its_format_and_is_sent_again_until_acknowledged(
    peer: SmscPeer, receipt_format: str,
) -> None:
    peer.control(receipt_format=receipt_format)
    async with bound(peer) as esme:
        esme.answer_deliver = nack_first_try()
        [answer] = await esme.submit(*texts(esme, "receipt me", "09124000001",
                                            registered_delivery=1))
        first, second = await esme.next_deliver(), await esme.next_deliver()
        receipts = await eventually(lambda: (r := peer.receipts())["reported"] and r)

    message_id = answer.message_id
    for deliver in (first, second):
        receipt = read_receipt(deliver)
        assert (receipt.message_id, receipt.reported) == (message_id, Reported.DELIVERED)
        assert (deliver.source_addr, deliver.destination_addr) == ("09124000001", SOURCE)
        if receipt_format == "tlv":
            assert deliver.short_message == b""
            assert deliver.tlvs.receipted_message_id == message_id
            assert deliver.tlvs.message_state == 2
        else:
            words = deliver.short_message.decode("latin-1")
            assert re.search(rf"done date:\d{{{receipt_format}}} stat:DELIVRD", words), words
            assert deliver.tlvs.receipted_message_id is None
    assert receipts["reported"] == {message_id: "delivered"}
    assert receipts["attempts"] == {message_id: 2} and receipts["pending"] == []
    assert [d["command_status"] for d in receipts["deliveries"]] == [S.ESME_RX_T_APPN, 0]


async def test_a_receipt_can_overtake_the_answer_to_its_submit(peer: SmscPeer) -> None:
    peer.control(receipt_before_resp=True)
    async with bound(peer) as esme:
        [answer] = await esme.submit(*texts(esme, "fast", "09124000002", registered_delivery=1))
        deliver = await esme.next_deliver()

    assert read_receipt(deliver).message_id == answer.message_id
    order = kinds(esme.received)
    assert order.index("DeliverSm") < order.index("SubmitSmResp"), order


async def test_receipts_go_to_the_receiver_bind_and_only_when_asked_for(peer: SmscPeer) -> None:
    async with bound(peer, BindMode.RECEIVER) as receiver, \
            bound(peer, BindMode.TRANSMITTER) as transmitter:
        asked, not_asked = await transmitter.submit(
            *texts(transmitter, "asked", "09124000003", registered_delivery=1),
            *texts(transmitter, "not asked", "09124000004"))
        deliver = await receiver.next_deliver()
        await eventually(lambda: peer.receipts()["reported"])

    assert (asked.command_status, not_asked.command_status) == (S.ESME_ROK, S.ESME_ROK)
    assert read_receipt(deliver).message_id == asked.message_id
    assert peer.receipts()["attempts"] == {asked.message_id: 1}
    assert "DeliverSm" not in kinds(transmitter.received)


async def test_a_receipt_unanswered_when_the_link_drops_comes_again_on_the_next_bind(
    peer: SmscPeer,
) -> None:
    async with bound(peer) as esme:
        esme.answer_deliver = lambda _: None  # never answered
        [answer] = await esme.submit(*texts(esme, "lost", "09124000005", registered_delivery=1))
        first = await esme.next_deliver()
        peer.control(drop_link=True)
        await esme.dropped()
    async with bound(peer) as esme:
        again = await esme.next_deliver()
        receipts = await eventually(lambda: (r := peer.receipts())["reported"] and r)

    assert read_receipt(first).message_id == read_receipt(again).message_id == answer.message_id
    assert receipts["attempts"] == {answer.message_id: 2}
    assert receipts["reported"] == {answer.message_id: "delivered"}


# --- ours only ----------------------------------------------------------------------------


async def test_our_simulator_draws_receipts_from_its_plan(tmp_path: Path) -> None:
    plan = "undelivered=0.5,none=0.5"
    with smsc("ours", tmp_path, SYSTEM_ID, PASSWORD, "--receipts", plan, "--seed", "7") as peer:
        async with bound(peer) as esme:
            answers = await esme.submit(*[
                one(esme, f"plan {n}", f"0912500{n:04d}", registered_delivery=1)
                for n in range(20)])
            receipts = await eventually(
                lambda: (r := peer.receipts())["pending"] == [] and
                len(r["reported"]) + len(r["none"]) == 20 and r)
            delivers = [esme.delivers.get_nowait() for _ in range(esme.delivers.qsize())]
        stats = peer.stats()["receipts"]

    ids = {answer.message_id for answer in answers}
    assert set(receipts["reported"]) | set(receipts["none"]) == ids
    assert receipts["reported"] and receipts["none"]  # seed 7 draws both
    assert set(receipts["reported"].values()) == {"undelivered"}
    assert {read_receipt(d).message_id for d in delivers} == set(receipts["reported"])
    assert {read_receipt(d).state for d in delivers} == {"UNDELIV"}
    assert (stats["undelivered"], stats["none"]) == (len(receipts["reported"]),
                                                     len(receipts["none"]))


async def test_our_simulator_counts_a_resent_submit_as_a_duplicate_with_a_new_id(
    tmp_path: Path,
) -> None:
    with smsc("ours", tmp_path) as peer:
        async with bound(peer) as esme:
            [first] = await esme.submit(one(esme, "again", "09126000001"))
            [second] = await esme.submit(one(esme, "again", "09126000001"))

        assert first.message_id != second.message_id  # an SMSC does not dedupe
        stats = peer.stats()
        assert (stats["accepted"], stats["duplicates"]) == (2, 1)


def test_our_smpp_simulator_refuses_a_receipt_url() -> None:
    finished = subprocess.run(
        [*SMSGW, "operator-sim", "--smpp", "--name", "A", "--receipt-url", "http://x/"],
        capture_output=True, text=True, timeout=60)

    assert finished.returncode == 2
    assert "receipt" in finished.stderr
