"""Delivery receipts, the core's rule (smsgw_core/receipts.py), as properties.

Any sequence of operator answers and receipts, in any order, duplicated, late or
for ids nothing knows: no status moves backwards, no recipient is refunded
twice, and a receipt kept for a recipient whose answer comes within the orphan
time is applied (first final one wins).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw_core.receipts import (
    OperatorMessage,
    Receipt,
    ReceiptDesk,
    Reported,
    Tracked,
    Verdict,
)

T0 = datetime(2026, 12, 7, tzinfo=UTC)
TTL = timedelta(seconds=60)
RECIPIENTS = 4
KNOWN = [OperatorMessage("A", f"m{n}") for n in range(RECIPIENTS)]
UNKNOWN = OperatorMessage("A", "never-answered")


@dataclass(frozen=True)
class Answer:
    n: int


@dataclass(frozen=True)
class Report:
    n: int  # RECIPIENTS: the unknown id
    reported: Reported


@dataclass(frozen=True)
class Wait:
    seconds: int


steps = st.lists(st.one_of(
    st.builds(Answer, st.integers(0, RECIPIENTS - 1)),
    st.builds(Report, st.integers(0, RECIPIENTS), st.sampled_from(Reported)),
    st.builds(Wait, st.integers(1, 90)),
), max_size=40)


def tracked(n: int) -> Tracked:
    return Tracked(f"sms-{n}", f"0912000000{n}", KNOWN[n])


def which(n: int) -> OperatorMessage:
    return KNOWN[n] if n < RECIPIENTS else UNKNOWN


@settings(max_examples=400)
@given(steps, st.booleans())
def test_no_sequence_moves_a_status_back_refunds_twice_or_loses_a_receipt(
    script: list[Answer | Report | Wait], refund_undelivered: bool,
) -> None:
    desk = ReceiptDesk(refund_undelivered=refund_undelivered, orphan_ttl=TTL)
    now = T0
    answered_at: dict[int, datetime] = {}
    received: list[tuple[int, Receipt]] = []
    final: dict[OperatorMessage, Reported] = {}
    refunds: dict[OperatorMessage, int] = {}
    # The receipt waiting for each id not answered yet: the first one, until a wait
    # past the orphan time drops it (the only moment the desk drops any).
    waiting: dict[OperatorMessage, Receipt] = {}
    expected: dict[OperatorMessage, Reported] = {}
    for step in script:
        applied = []
        if isinstance(step, Answer):
            if step.n not in answered_at and KNOWN[step.n] in waiting:
                expected[KNOWN[step.n]] = waiting.pop(KNOWN[step.n]).reported
            answered_at.setdefault(step.n, now)
            applied = desk.answered(tracked(step.n))
        elif isinstance(step, Report):
            receipt = Receipt(which(step.n), step.reported, "", None, now)
            received.append((step.n, receipt))
            verdict, moved = desk.receive(receipt)
            first_for_id = receipt.about not in waiting
            assert (verdict is Verdict.KEPT) == (step.n not in answered_at and first_for_id)
            if step.n in answered_at:
                expected.setdefault(receipt.about, receipt.reported)
            else:
                waiting.setdefault(receipt.about, receipt)
            applied = [moved] if moved is not None else []
        else:
            now += timedelta(seconds=step.seconds)
            desk.expire(now)
            waiting = {about: r for about, r in waiting.items()
                       if now - r.received_at <= TTL}
        for move in applied:
            message = move.recipient.message
            assert message not in final, "a final status moved"
            final[message] = move.recipient.reported  # type: ignore[assignment]
            refunds[message] = refunds.get(message, 0) + move.refund
            assert move.refund == (refund_undelivered and move.recipient.reported
                                   is not Reported.DELIVERED)
        # Backwards never: every final status seen so far is still the desk's.
        for message, reported in final.items():
            assert desk.tracked[message].reported is reported
    assert all(count <= 1 for count in refunds.values())
    # First final one wins, and none is lost: a recipient's status is that of the
    # receipt still kept for its id when the answer came, else of the first that
    # arrived after the answer.
    for n in answered_at:
        assert desk.tracked[KNOWN[n]].reported is expected.get(KNOWN[n]), (n, received)
    # Duplicates are counted; what was never answered is kept or an orphan.
    applied_count = len(final)
    kept_count = sum(len(v) for v in desk.kept.values())
    assert applied_count + desk.duplicates + kept_count + desk.orphans == len(received)


def test_a_receipt_that_overtook_the_answer_is_applied_when_it_is_recorded() -> None:
    desk = ReceiptDesk()
    early = Receipt(KNOWN[0], Reported.DELIVERED, "", T0, T0)
    assert desk.receive(early) == (Verdict.KEPT, None)
    [moved] = desk.answered(tracked(0))
    assert moved.recipient.reported is Reported.DELIVERED and not moved.refund
    late = Receipt(KNOWN[0], Reported.UNDELIVERED, "34", None, T0 + timedelta(seconds=5))
    assert desk.receive(late) == (Verdict.DUPLICATE, None)
    assert desk.tracked[KNOWN[0]].reported is Reported.DELIVERED and desk.duplicates == 1


def test_a_receipt_nothing_answers_is_kept_for_the_orphan_time_then_counted() -> None:
    desk = ReceiptDesk(orphan_ttl=TTL)
    receipt = Receipt(UNKNOWN, Reported.DELIVERED, "", None, T0)
    assert desk.receive(receipt) == (Verdict.KEPT, None)
    assert desk.expire(T0 + TTL) == [] and desk.orphans == 0
    assert desk.expire(T0 + TTL + timedelta(seconds=1)) == [receipt]
    assert desk.orphans == 1 and not desk.kept


def test_undelivered_refunds_only_where_set_and_delivered_never() -> None:
    for setting in (False, True):
        desk = ReceiptDesk(refund_undelivered=setting)
        for n, reported in enumerate(Reported):
            desk.answered(tracked(n))
            _, moved = desk.receive(Receipt(KNOWN[n], reported, "", None, T0))
            assert moved is not None
            assert moved.refund == (setting and reported is not Reported.DELIVERED)


def test_an_answer_recorded_twice_keeps_what_receipts_made_of_it() -> None:
    desk = ReceiptDesk()
    desk.answered(tracked(1))
    desk.receive(Receipt(KNOWN[1], Reported.EXPIRED, "", None, T0))
    assert desk.answered(tracked(1)) == []
    assert desk.tracked[KNOWN[1]].reported is Reported.EXPIRED
