"""The whole gateway over SMPP (issue 26), against both SMSCs of the tests.

SMSGW_OPERATORS names an `smpp://` operator bound to an SMSC peer: "node" (node-smpp,
which nobody here wrote: the reference) or "ours" (`smsgw operator-sim --smpp`). Each
test runs against both, so the adapter is held to a codec not ours and our simulator
is held to the reference. The gateway runs as real processes (smpp_helpers.py);
what arrived is read from the peer's control API (/submits, /messages, /receipts,
/stats), what the gateway made of it from its database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from smsgw_adapters.operators.smpp.pdu import smpp_time
from smsgw_adapters.operators.smpp.text import (
    DATA_CODING_GSM7,
    DATA_CODING_UCS2,
    ESM_CLASS_UDHI,
    encode_gsm7,
    encode_ucs2,
    reference_for,
)
from tests.integration.harness import wait_until
from tests.integration.receipts_helpers import Sent, assert_money, metric, snapshot
from tests.integration.smpp_helpers import (
    OPERATOR,
    PRICES,
    SOURCE,
    accepted_at,
    by_destination,
    first_parts,
    numbers,
    send,
    settle,
    smpp_url,
    start_gateway,
    statuses_as_reported,
    taken,
    unanswered,
)
from tests.peers.smsc_peer import KINDS, PASSWORD, SYSTEM_ID, SmscPeer, smsc

pytestmark = pytest.mark.slow

USER = 2601
TOP_UP = 10_000
GSM7_TEXT = "Hi @home: {ok} [1] ~2 ^3 |4 \\5 €6 £7 è"
UCS2_TEXT = "سلام دنیا 😀"
LONG_TEXT = "".join(f"part {n:03d} of a long GSM-7 text; " for n in range(11))  # 341: 3 parts
TTL = timedelta(seconds=86_400)  # SMSGW_MESSAGE_TTL_S's default


@pytest.fixture(params=KINDS)
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmscPeer]:
    with smsc(request.param, tmp_path / "smsc") as started:
        yield started


def test_texts_arrive_as_sent_gsm7_ucs2_and_three_parts_charged_three(
    peer: SmscPeer, tmp_path: Path,
) -> None:
    """Bound with the password (an operator with a wrong one is refused and failed over);
    GSM-7 with escapes as data_coding 0, UCS-2 as 8, a 341-character text as 3 parts
    behind one UDH reference, charged 3 segments; every receipt applied."""
    with ExitStack() as stack:
        operators = (f"B={smpp_url(peer, password='wrong', binds=1)},"
                     f"{OPERATOR}={smpp_url(peer)}")
        gateway = start_gateway("embedded", tmp_path / "gateway", stack, operators)
        gateway.top_up(USER, TOP_UP)
        gsm7, ucs2, long = numbers("0912100", 3)
        sent = dict([send(gateway, USER, GSM7_TEXT, [gsm7]),
                     send(gateway, USER, UCS2_TEXT, [ucs2]),
                     send(gateway, USER, LONG_TEXT, [long], "express")])
        settled = settle(gateway, USER, peer, recipients=3)

    statuses_as_reported(settled)
    assert {row.status for row in settled.snap.rows.values()} == {"DELIVERED"}
    stats = peer.stats()
    assert stats["binds"] == 2 and stats["bind_failures"] >= 1  # A's two; B's refused
    assert stats["accepted"] == 5  # 1 + 1 + 3 parts, each once
    records = by_destination(peer)
    assert records.keys() == {gsm7, ucs2, long}
    for to, submits in records.items():
        for record in submits:
            assert (record["system_id"], record["bind"]) == (SYSTEM_ID, "bind_transceiver")
            assert (record["source_addr"], record["status"]) == (SOURCE, 0)
            # The SMS's validity: accepted_at + SMSGW_MESSAGE_TTL_S (a day), in UTC.
            assert record["validity_period"] == smpp_time(accepted_at(gateway, to) + TTL)
    [one] = records[gsm7]
    assert (one["data_coding"], one["esm_class"], one["udh"]) == (DATA_CODING_GSM7, 0, None)
    assert (one["short_message"], one["text"]) == (encode_gsm7(GSM7_TEXT).hex(), GSM7_TEXT)
    [one] = records[ucs2]
    assert (one["data_coding"], one["esm_class"], one["udh"]) == (DATA_CODING_UCS2, 0, None)
    assert (one["short_message"], one["text"]) == (encode_ucs2(UCS2_TEXT).hex(), UCS2_TEXT)
    parts = records[long]
    [long_sms] = [sms for sms, s in sent.items() if s.recipients == (long,)]
    reference = reference_for(f"{long_sms}:{long}")  # the message's stable reference's
    assert [p["udh"] for p in parts] == [f"050003{reference:02x}03{seq:02x}" for seq in (1, 2, 3)]
    assert {(p["esm_class"], p["data_coding"]) for p in parts} == {(ESM_CLASS_UDHI,
                                                                    DATA_CODING_GSM7)}
    assert [p["registered_delivery"] for p in parts] == [1, 0, 0]  # a receipt for the first
    [message] = [m for m in peer.messages() if m["destination_addr"] == long]
    assert (message["reference"], message["total"], message["complete"]) == (reference, 3, True)
    assert message["text"] == LONG_TEXT
    assert message["parts"] == [p["message_id"] for p in parts]
    # The gateway keeps the first part's id: the one its receipt names.
    rows = {recipient: row for (_, recipient), row in settled.snap.rows.items()}
    assert {to: row.message_id for to, row in rows.items()} == {
        to: submits[0]["message_id"] for to, submits in records.items()}
    assert sent[long_sms].cost == 3 * PRICES["express"]  # charged 3 segments
    assert_money(settled.snap, sent, TOP_UP, refunds_on=False)
    assert not settled.snap.unmatched


def test_a_throttled_bind_slows_down_then_delivers_everything(
    peer: SmscPeer, tmp_path: Path,
) -> None:
    """Above 5 submits a second the SMSC answers ESME_RTHROTTLED: the binds pause and
    send the same PDU again, so every recipient is delivered, each sent once (a
    throttled submit is not taken), and no send fails (no retry, no deferral)."""
    count = 20
    peer.control(throttle_above=5)
    with ExitStack() as stack:
        gateway = start_gateway("embedded", tmp_path / "gateway", stack,
                                f"{OPERATOR}={smpp_url(peer)}")
        gateway.top_up(USER, TOP_UP)
        recipients = numbers("0912200", count)
        sent = dict([send(gateway, USER, "throttled", recipients[:14]),
                     send(gateway, USER, "throttled express", recipients[14:], "express")])
        settled = settle(gateway, USER, peer, recipients=count)
        logs = gateway.logs()

    statuses_as_reported(settled)
    assert {row.status for row in settled.snap.rows.values()} == {"DELIVERED"}
    # The binds paused and sent again: not one send failed (no retry, no deferral).
    assert "ESME_RTHROTTLED, pausing submits" in logs
    assert "did not take the sms" not in logs
    stats = peer.stats()
    assert stats["accepted"] == count and stats["throttled"] > 0
    assert stats["submits"] == stats["accepted"] + stats["throttled"]  # nothing else
    sent_to = first_parts(peer)
    assert sent_to.keys() == set(recipients)
    for recipient, records in sent_to.items():
        [once] = taken(records)  # the throttled ones were not taken: no duplicate
        assert once["status"] == 0
        [row] = [r for (_, to), r in settled.snap.rows.items() if to == recipient]
        assert row.message_id == once["message_id"]
    assert_money(settled.snap, sent, TOP_UP, refunds_on=False)


def test_a_link_dropped_mid_window_loses_nothing_and_resends_only_what_was_in_flight(
    peer: SmscPeer, tmp_path: Path,
) -> None:
    """Twice: the link of the 5th submit_sm dropped as it is taken (unanswered:
    drop_after_submits), then both links dropped while 20 submits (a window of 10 on
    each bind) wait for their answers. Every recipient is delivered and each text
    reached the SMSC; a recipient is sent again only when its submit was out at a drop
    (taken and unanswered, or answered too late: an answer the SMSC wrote just before
    resetting the link can be lost with it), and then once. The gateway keeps the id of
    the last one; the receipts of the others (ids it never got) are kept unmatched."""
    with ExitStack() as stack:
        gateway = start_gateway("embedded", tmp_path / "gateway", stack,
                                f"{OPERATOR}={smpp_url(peer)}")
        gateway.top_up(USER, TOP_UP)
        first, second = numbers("0912301", 12), numbers("0912302", 30)

        peer.control(drop_after_submits=5)
        sent = dict([send(gateway, USER, "dropped after 5", first)])
        settle(gateway, USER, peer, recipients=len(first))
        # Sent before the drop: the first five submits (the fifth taken, unanswered).
        before_first_drop = peer.submits()[:5]

        wait_until(lambda: peer.stats()["binds"] == 3)  # the dropped bind is back
        peer.control(latency_ms=60_000)  # no answer comes before the drop
        sent.update([send(gateway, USER, "dropped mid-window", second[:20]),
                     send(gateway, USER, "dropped mid-window, express", second[20:], "express")])
        in_flight = wait_until(partial(_unanswered_to, peer, second, 20))
        peer.control(latency_ms=0, drop_link=True)
        settled = settle(gateway, USER, peer, recipients=len(first) + len(second))

    stats = peer.stats()
    assert stats["links_dropped"] == 1 + 2, stats
    dropped = before_first_drop[-1]
    assert dropped["message_id"] and dropped["status"] is None
    statuses_as_reported(settled)
    assert {row.status for row in settled.snap.rows.values()} == {"DELIVERED"}
    sent_to = first_parts(peer)
    assert sent_to.keys() == set(first) | set(second)  # every text reached the SMSC
    out_at_a_drop = {r["message_id"] for r in [*before_first_drop, *in_flight]}
    resent = set()
    for recipient, records in sent_to.items():
        took = taken(records)
        assert all(r["text"] == took[0]["text"] for r in records)
        [row] = [r for (_, to), r in settled.snap.rows.items() if to == recipient]
        # The last one taken was answered, and its id is the one the gateway keeps ...
        assert (took[-1]["status"], took[-1]["message_id"]) == (0, row.message_id)
        # ... any before it was out when a link dropped: sent again once, no more.
        assert len(took) <= 2 and {r["message_id"] for r in took[:-1]} <= out_at_a_drop
        if len(took) == 2:
            resent.add(recipient)
    # What was out unanswered at a drop was all sent again (taken, no answer: lost).
    unanswered_at_drops = {dropped["destination_addr"]} | {r["destination_addr"]
                                                           for r in in_flight}
    assert unanswered_at_drops <= resent
    print(f"{peer.kind}: resent {len(resent)}, {len(resent - unanswered_at_drops)} of them "
          "answered just before the drop")
    # The receipts of the ids the gateway never got found no recipient: kept, no other.
    never_got = {r["message_id"] for records in sent_to.values() for r in taken(records)[:-1]}
    assert settled.snap.unmatched == {(OPERATOR, mid) for mid in never_got}
    assert_money(settled.snap, sent, TOP_UP, refunds_on=False)


def _unanswered_to(peer: SmscPeer, recipients: list[str], count: int,
                   ) -> list[dict[str, Any]] | None:
    """The taken, unanswered submits to `recipients` once there are `count` of them."""
    found = [r for r in unanswered(peer) if r["destination_addr"] in recipients]
    return found if len(found) == count else None


# Ours draws each receipt's fate from a plan; node-smpp reports the `receipt_stat` it is
# set to (a control ours has no counterpart for): each phase below sets one.
PLAN = ("--receipts", "delivered=0.4,undelivered=0.3,expired=0.3", "--seed", "26")
PHASES = (  # receipt_format, node's receipt_stat, receipt_before_resp, latency_ms
    ("10", "DELIVRD", False, 0),
    ("12", "UNDELIV", False, 0),
    ("tlv", "EXPIRED", False, 0),
    ("12", "DELIVRD", True, 0),  # the receipt written just before the answer
    ("tlv", "UNDELIV", True, 6000),  # ... and recorded while the answer is held back
)
PER_PHASE = 4


@pytest.fixture(params=KINDS)
def reporting_peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmscPeer]:
    options = PLAN if request.param == "ours" else ()
    with smsc(request.param, tmp_path / "smsc", SYSTEM_ID, PASSWORD, *options) as started:
        yield started


def test_receipts_in_every_format_and_before_the_answer_reach_their_recipients(
    reporting_peer: SmscPeer, tmp_path: Path,
) -> None:
    """Receipts with 10- and 12-digit dates and as TLVs only move each recipient to what
    the SMSC reported (refunds for undelivered and expired, the setting on). A receipt
    written before its submit_sm_resp is recorded first (kept: the recipient has no
    message id yet) and applied when the answer lands; nothing stays kept."""
    peer = reporting_peer
    with ExitStack() as stack:
        gateway = start_gateway("embedded", tmp_path / "gateway", stack,
                                f"{OPERATOR}={smpp_url(peer)}",
                                SMSGW_REFUND_UNDELIVERED="true")
        gateway.top_up(USER, TOP_UP)
        sent: dict[str, Sent] = {}
        phase_ids: list[set[str]] = []
        for number, (receipt_format, stat, before_resp, latency_ms) in enumerate(PHASES):
            settings: dict[str, object] = {"receipt_format": receipt_format,
                                           "receipt_before_resp": before_resp,
                                           "latency_ms": latency_ms}
            if peer.kind == "node":
                settings["receipt_stat"] = stat
            peer.control(**settings)
            recipients = numbers(f"091240{number}", PER_PHASE)
            sent.update([send(gateway, USER, f"receipt phase {number}", recipients)])
            # Taken under this phase's settings before the next phase changes them.
            ids: set[str] = wait_until(partial(_all_taken, peer, recipients))
            phase_ids.append(ids)
            if latency_ms:
                # Every receipt acknowledged (recorded by the gateway) while not one
                # answer has been written: they were all kept, none applied yet.
                wait_until(partial(_acknowledged, peer, ids))
                held = {r["message_id"] for r in unanswered(peer)}
                assert ids <= held, "an answer came before its receipt was recorded"
                early = snapshot(gateway, USER)
                assert {(OPERATOR, mid) for mid in ids} <= early.unmatched
                assert {row.status for (_, to), row in early.rows.items()
                        if to in recipients} == {"SENDING"}
        settled = settle(gateway, USER, peer, recipients=len(PHASES) * PER_PHASE)
        kept = metric(gateway, "smsgw_receipts_total", operator=OPERATOR, status="kept")

    statuses_as_reported(settled)
    assert not settled.snap.unmatched  # every receipt found its recipient
    assert set(settled.snap.receipts) == {(OPERATOR, mid) for ids in phase_ids for mid in ids}
    deliveries = settled.receipts["deliveries"]
    for (receipt_format, stat, _, _), ids in zip(PHASES, phase_ids, strict=True):
        assert {d["format"] for d in deliveries if d["message_id"] in ids} == {receipt_format}
        if peer.kind == "node":
            expected = {"DELIVRD": "delivered", "UNDELIV": "undelivered", "EXPIRED": "expired"}
            assert {settled.receipts["reported"][mid] for mid in ids} == {expected[stat]}
    assert kept >= PER_PHASE  # at least the held-back phase's
    statuses = Counter(row.status for row in settled.snap.rows.values())
    print(f"{peer.kind}: {dict(statuses)}, kept first {kept:g}")
    if peer.kind == "ours":  # seed 26 draws every fate
        assert statuses.keys() == {"DELIVERED", "UNDELIVERED", "EXPIRED"}
    assert_money(settled.snap, sent, TOP_UP, refunds_on=True)


def _all_taken(peer: SmscPeer, recipients: list[str]) -> set[str] | None:
    """The ids of the messages to `recipients` once the SMSC took one for each."""
    ids = {r["message_id"] for to, records in first_parts(peer).items() if to in recipients
           for r in taken(records)}
    return ids if len(ids) == len(recipients) else None


def _acknowledged(peer: SmscPeer, ids: set[str]) -> bool:
    """The receipts of `ids` answered ESME_ROK (the gateway recorded them)."""
    reported: dict[str, str] = peer.receipts()["reported"]
    return ids <= reported.keys()


def test_a_worker_killed_with_ten_in_its_window_settles_every_recipient_once(
    peer: SmscPeer, tmp_path: Path,
) -> None:
    """The split gateway (api, relay and worker on MariaDB and RabbitMQ) on one bind
    with a window of 10; the SMSC holds its answers, so when the worker is killed -9 ten
    submits are out, taken and unanswered. Restarted, it sends those ten again once
    their lease (5 s) lapses, and everything else once: every recipient ends with one
    final status, the ten sent twice (the resend at-least-once allows), nothing else
    twice; the money is exact (no FAILED, no refund)."""
    with ExitStack() as stack:
        gateway = start_gateway("split", tmp_path / "gateway", stack,
                                f"{OPERATOR}={smpp_url(peer, binds=1)}",
                                SMSGW_DELIVERY_LEASE_S="5")
        gateway.top_up(USER, TOP_UP)
        peer.control(latency_ms=60_000)  # no answer before the kill
        recipients = numbers("0912500", 25)
        sent = dict([send(gateway, USER, "killed mid-window", recipients[:15]),
                     send(gateway, USER, "killed mid-window, express", recipients[15:],
                          "express")])
        wait_until(lambda: len(unanswered(peer)) == 10, timeout=60)
        gateway.kill("worker")
        at_kill = snapshot(gateway, USER)
        in_window = {r["destination_addr"]: r["message_id"] for r in peer.submits()}
        peer.control(latency_ms=0)
        gateway.start("worker")
        settled = settle(gateway, USER, peer, recipients=len(recipients), timeout=120)

    assert len(in_window) == 10 and set(in_window) <= set(recipients)  # the window, no more
    assert {row.status for (_, to), row in at_kill.rows.items() if to in in_window} == {
        "SENDING"}
    statuses_as_reported(settled)
    assert {row.status for row in settled.snap.rows.values()} == {"DELIVERED"}
    assert len(settled.snap.rows) == len(recipients)  # one row, one final status, each
    sent_to = first_parts(peer)
    assert sent_to.keys() == set(recipients)
    for recipient, records in sent_to.items():
        took = taken(records)
        [answered] = [r for r in took if r["status"] == 0]
        [row] = [r for (_, to), r in settled.snap.rows.items() if to == recipient]
        assert row.message_id == answered["message_id"]
        lost = [r["message_id"] for r in took if r["status"] is None]
        assert lost == ([in_window[recipient]] if recipient in in_window else []), recipient
        assert len(took) == len(records) == 1 + len(lost)
    assert peer.stats()["accepted"] == len(recipients) + len(in_window)
    # The receipts of the ten lost ids name no recipient: kept, and nothing else is.
    assert settled.snap.unmatched == {(OPERATOR, mid) for mid in in_window.values()}
    assert_money(settled.snap, sent, TOP_UP, refunds_on=False)
