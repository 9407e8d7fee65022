"""Delivery receipts on every storage: ReceiptIntake, settle and the orphan sweep
through the real repositories, held to ReceiptDesk (smsgw_core/receipts.py).

Scripted sequences (a receipt before and after its answer, twice, a second final
one, an unknown id, orphans, refunds on and off, the history), a property over
any interleaving of answers, receipts and sweeps, and on MariaDB receipts
racing the answers they name from other connections.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TypeVar

import pytest
from contract_helpers import T0, at, charge, messages, topup
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from receipt_helpers import (
    OP,
    RECEIPT_STATUSES,
    TTL,
    Gateway,
    Twin,
    done,
    receipt,
)

from smsgw_core.errors import InvalidTransition
from smsgw_core.ledger import TransactionType, charge_id, refund_id
from smsgw_core.messages import SmsStatus
from smsgw_core.ports import HistoryFilter, RecipientFinish, UnitOfWorkFactory
from smsgw_core.receipts import (
    OperatorMessage,
    Receipt,
    ReceiptPolicy,
    Reported,
)
from smsgw_core.services.receipts import ReceiptCounts, ReceiptIntake
from smsgw_core.testing import FakeClock, InMemoryDatabase

A, B, C, D = "+989120000001", "+989120000002", "+989120000003", "+989120000004"
DELIVERED, UNDELIVERED, EXPIRED = Reported.DELIVERED, Reported.UNDELIVERED, Reported.EXPIRED


@pytest.fixture(params=[False, True], ids=["keep-undelivered", "refund-undelivered"])
def policy(request: pytest.FixtureRequest) -> ReceiptPolicy:
    return ReceiptPolicy(refund_undelivered=request.param, orphan_ttl=TTL)


async def _twin(uow_factory: UnitOfWorkFactory, policy: ReceiptPolicy) -> Twin:
    twin = Twin(Gateway(uow_factory, policy))
    await twin.gateway.top_up(1000)
    return twin


# --- the ports, directly ------------------------------------------------------------


async def _done_recipients(uow_factory: UnitOfWorkFactory) -> None:
    """s1: A DONE by op-a as m-a, B DONE by op-a as m-b, C FAILED; s2: A DONE by op-b
    as m-a (an id is the operator's own)."""
    async with uow_factory() as uow:
        await uow.messages.add(messages("s1", 1, A, B, C))
        await uow.messages.add(messages("s2", 1, A))
        await uow.messages.claim_many(["s1", "s2"], at(1))
        assert await uow.messages.finish_many([
            RecipientFinish("s1", A, SmsStatus.DONE, OP, "m-a"),
            RecipientFinish("s1", B, SmsStatus.DONE, OP, "m-b"),
            RecipientFinish("s1", C, SmsStatus.FAILED),
            RecipientFinish("s2", A, SmsStatus.DONE, "op-b", "m-a"),
        ], at(2)) == [True] * 4
        await uow.commit()


async def test_report_many_moves_each_done_recipient_once(uow_factory: UnitOfWorkFactory) -> None:
    await _done_recipients(uow_factory)
    a, b = OperatorMessage(OP, "m-a"), OperatorMessage(OP, "m-b")
    async with uow_factory() as uow:
        reached = await uow.messages.report_many([
            (a, SmsStatus.DELIVERED), (a, SmsStatus.EXPIRED), (b, SmsStatus.UNDELIVERED),
            (OperatorMessage(OP, "m-zz"), SmsStatus.DELIVERED),
            (OperatorMessage("op-b", "m-a"), SmsStatus.EXPIRED),
            (OperatorMessage("op-c", "m-a"), SmsStatus.EXPIRED),
        ], at(5))
        await uow.commit()
    assert [r and (r.sms_identifier, r.recipient, r.customer_id, r.moved) for r in reached] == [
        ("s1", A, 1, True), ("s1", A, 1, False), ("s1", B, 1, True), None,
        ("s2", A, 1, True), None,
    ]
    assert [r.done_at for r in reached if r is not None and r.moved] == [at(2)] * 3
    async with uow_factory() as uow:
        # Final already: reached, not moved; a failed recipient has no id to name.
        again = await uow.messages.report_many([(b, SmsStatus.DELIVERED)], at(6))
        assert [(r.recipient, r.moved) for r in again if r is not None] == [(B, False)]
        assert await uow.messages.report_many([], at(6)) == []
        rows = await uow.messages.history(HistoryFilter(1), 10, None)
    assert {(m.sms_identifier, m.recipient): (m.status, m.updated_at) for _, m in rows} == {
        ("s1", A): (SmsStatus.DELIVERED, at(5)), ("s1", B): (SmsStatus.UNDELIVERED, at(5)),
        ("s1", C): (SmsStatus.FAILED, at(2)), ("s2", A): (SmsStatus.EXPIRED, at(5)),
    }


@pytest.mark.parametrize("status", [SmsStatus.DONE, SmsStatus.FAILED, SmsStatus.PENDING])
async def test_report_many_takes_only_a_receipt_status(
    uow_factory: UnitOfWorkFactory, status: SmsStatus,
) -> None:
    await _done_recipients(uow_factory)
    async with uow_factory() as uow:
        for about in (OperatorMessage(OP, "m-a"), OperatorMessage(OP, "m-zz")):
            with pytest.raises(InvalidTransition):
                await uow.messages.report_many([(about, status)], at(5))


async def test_receipts_keep_the_first_per_id_until_an_orphan_sweep(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await _done_recipients(uow_factory)
    first = receipt("m-1", DELIVERED, at(10), done_at=at(9.5))
    other_operator = receipt("m-1", EXPIRED, at(11), operator="op-b")
    answered = receipt("m-a", UNDELIVERED, at(12), error_code="34")
    newest = receipt("m-2", EXPIRED, at(13))
    async with uow_factory() as uow:
        assert await uow.receipts.add([]) == []
        assert await uow.receipts.add([
            first, replace(first, reported=UNDELIVERED), other_operator, answered, first,
        ]) == [True, False, True, True, False]
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.receipts.add([newest, replace(first, received_at=at(14))]) == [
            True, False]
        # Rolled back: not stored.
    async with uow_factory() as uow:
        assert await uow.receipts.add([newest]) == [True]
        await uow.commit()
        everyone = [first.about, other_operator.about, answered.about, newest.about,
                    OperatorMessage(OP, "m-zz")]
        assert await uow.receipts.waiting(everyone) == [first, other_operator, answered, newest]
        assert await uow.receipts.waiting([]) == []
        # Received before at(13) and no recipient with the id; oldest first, as many
        # as asked.
        assert await uow.receipts.expire(at(13), 1) == [first]
        assert await uow.receipts.expire(at(13), 10) == [other_operator]
        assert await uow.receipts.expire(at(13), 10) == []
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.receipts.waiting(everyone) == [answered, newest]


async def test_shares_are_the_charge_over_the_recipients(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.ledger.apply(topup("t", 1, 100))
        await uow.messages.add(messages("s1", 1, A, B, C))
        await uow.ledger.apply(charge(charge_id("s1"), 1, 21))
        await uow.messages.add(messages("free", 1, A))  # never charged
        await uow.commit()
        assert await uow.messages.shares(["s1", "free", "unknown", "s1"]) == {"s1": 7}
        assert await uow.messages.shares([]) == {}


# --- scripted sequences ------------------------------------------------------------


async def test_a_receipt_that_overtook_its_answer_is_kept_then_applied_by_it(
    uow_factory: UnitOfWorkFactory, policy: ReceiptPolicy,
) -> None:
    twin = await _twin(uow_factory, policy)
    gw = twin.gateway
    sms = await twin.accept("s1", [A, B], share=3)
    gw.wait(1)
    said = gw.now() - timedelta(seconds=0.25)  # the operator's time, to the microsecond
    early = receipt("m-a", UNDELIVERED, gw.now(), error_code="34", done_at=said)
    assert await twin.receive(early) == ReceiptCounts(applied=0, kept=1, duplicates=0)
    assert await gw.status("s1", A) is SmsStatus.SENDING
    assert await gw.waiting([early.about]) == {early.about: early}

    gw.wait(2)
    settled = await twin.done(sms, A, "m-a")
    assert settled is not None
    [(applied, waited)] = settled.receipts.applied
    assert (applied, waited) == (early, 0.0)  # it came before the answer: no wait
    refunded = [tx.transaction_id for tx in settled.receipts.refunds]
    assert refunded == ([refund_id("s1", A)] if policy.refund_undelivered else [])

    row = (await gw.recipients())[("s1", A)]
    assert (row.status, row.message_id, row.error_code, row.delivered_at) == (
        SmsStatus.UNDELIVERED, "m-a", "34", said)
    # The same receipt sent again later changes nothing.
    gw.wait(1)
    assert await twin.receive(early) == ReceiptCounts(applied=0, kept=0, duplicates=1)
    await twin.check()


async def test_a_receipt_after_its_answer_is_applied_at_once(
    uow_factory: UnitOfWorkFactory, policy: ReceiptPolicy,
) -> None:
    twin = await _twin(uow_factory, policy)
    gw = twin.gateway
    sms = await twin.accept("s1", [A, B, C], share=4)
    gw.wait(1)
    for recipient, message_id in ((A, "m-a"), (B, "m-b"), (C, "m-c")):
        assert await twin.done(sms, recipient, message_id)
    gw.wait(5)
    counts = await twin.receive(
        receipt("m-a", DELIVERED, gw.now()),
        receipt("m-b", EXPIRED, gw.now(), error_code="0a", done_at=gw.now() - timedelta(1)),
        receipt("m-c", UNDELIVERED, gw.now(), error_code="1"),
    )
    assert counts == ReceiptCounts(applied=3, kept=0, duplicates=0)
    rows = await gw.recipients()
    assert [(rows[("s1", r)].status, rows[("s1", r)].error_code) for r in (A, B, C)] == [
        (SmsStatus.DELIVERED, ""), (SmsStatus.EXPIRED, "0a"), (SmsStatus.UNDELIVERED, "1")]
    assert rows[("s1", A)].delivered_at == gw.now()  # no done_at: when it was received
    assert rows[("s1", B)].delivered_at == gw.now() - timedelta(1)
    # The refund of one taken by the intake is the charge's share of the recipient.
    refunds = await gw.refunds()
    if policy.refund_undelivered:
        assert {k: tx.amount for k, tx in refunds.items()} == {
            refund_id("s1", B): 4, refund_id("s1", C): 4}
        assert refunds[refund_id("s1", B)].description == (
            f"refund: {B} expired (receipt from {OP}, error 0a)")
        assert (await gw.ledger())[0] == 1000 - 12 + 8
    else:
        assert refunds == {}
        assert (await gw.ledger())[0] == 1000 - 12
    async with uow_factory() as uow:
        delivered = await uow.messages.history(
            HistoryFilter(1, status=SmsStatus.DELIVERED), 10, None)
    assert [m.recipient for _, m in delivered] == [A]
    await twin.check()


async def test_the_same_receipt_twice_is_a_duplicate_in_one_batch_or_two(
    uow_factory: UnitOfWorkFactory, policy: ReceiptPolicy,
) -> None:
    twin = await _twin(uow_factory, policy)
    gw = twin.gateway
    sms = await twin.accept("s1", [A, B], share=2)
    assert await twin.done(sms, A, "m-a")
    gw.wait(1)
    known = receipt("m-a", EXPIRED, gw.now(), error_code="9")
    unknown = receipt("m-x", UNDELIVERED, gw.now())
    # The very same receipt twice in a batch, and an equal copy of it.
    assert await twin.receive(known, known) == ReceiptCounts(applied=1, kept=0, duplicates=1)
    assert await twin.receive(replace(known)) == ReceiptCounts(0, 0, 1)
    assert await twin.receive(unknown, unknown, replace(unknown)) == ReceiptCounts(0, 1, 2)
    gw.wait(1)
    assert await twin.receive(unknown, known) == ReceiptCounts(0, 0, 2)
    refunds = await gw.refunds()
    assert list(refunds) == ([refund_id("s1", A)] if policy.refund_undelivered else [])
    await twin.check()


async def test_the_first_final_receipt_wins(
    uow_factory: UnitOfWorkFactory, policy: ReceiptPolicy,
) -> None:
    twin = await _twin(uow_factory, policy)
    gw = twin.gateway
    sms = await twin.accept("s1", [A, B, C], share=5)
    assert await twin.done(sms, A, "m-a")
    assert await twin.done(sms, B, "m-b")
    gw.wait(1)
    assert await twin.receive(receipt("m-a", DELIVERED, gw.now())) == ReceiptCounts(1, 0, 0)
    gw.wait(1)
    # A second, different final receipt: in a later batch, in the same batch, and two
    # kept for an id whose answer comes after both.
    assert await twin.receive(receipt("m-a", UNDELIVERED, gw.now(), error_code="7")) == (
        ReceiptCounts(0, 0, 1))
    assert await twin.receive(
        receipt("m-b", EXPIRED, gw.now(), error_code="e"),
        receipt("m-b", DELIVERED, gw.now()),
    ) == ReceiptCounts(1, 0, 1)
    assert await twin.receive(
        receipt("m-c", UNDELIVERED, gw.now(), error_code="c1"),
        receipt("m-c", DELIVERED, gw.now()),
    ) == ReceiptCounts(0, 1, 1)
    gw.wait(1)
    assert await twin.receive(receipt("m-c", EXPIRED, gw.now())) == ReceiptCounts(0, 0, 1)
    assert await twin.done(sms, C, "m-c")
    rows = await gw.recipients()
    assert [(rows[("s1", r)].status, rows[("s1", r)].error_code) for r in (A, B, C)] == [
        (SmsStatus.DELIVERED, ""), (SmsStatus.EXPIRED, "e"), (SmsStatus.UNDELIVERED, "c1")]
    refunded = set(await gw.refunds())
    assert refunded == ({refund_id("s1", B), refund_id("s1", C)}
                        if policy.refund_undelivered else set())
    await twin.check()


async def test_an_unknown_id_is_kept_then_dropped_as_an_orphan_after_the_orphan_time(
    uow_factory: UnitOfWorkFactory, policy: ReceiptPolicy,
) -> None:
    twin = await _twin(uow_factory, policy)
    gw = twin.gateway
    sms = await twin.accept("s1", [A, B, C, D], share=6)
    assert await twin.fail(sms, D)  # its operator's id is never recorded
    start = gw.now()
    never = receipt("m-never", DELIVERED, start)
    for_failed = receipt("m-d", DELIVERED, start)
    early_b = receipt("m-b", EXPIRED, start, error_code="x")
    early_c = receipt("m-c", UNDELIVERED, start)
    assert await twin.receive(never, for_failed, early_b, early_c) == ReceiptCounts(0, 4, 0)
    gw.wait(10)
    assert await twin.done(sms, B, "m-b")  # within the orphan time: applied
    gw.wait(TTL.total_seconds() - 10)
    assert await twin.expire() == 0  # exactly the orphan time: not past it yet
    gw.wait(5)
    # Past the orphan time but not swept yet: the answer still finds its receipt.
    assert await twin.done(sms, C, "m-c")
    assert await twin.done(sms, A, "m-a")
    assert await twin.expire() == 2  # m-never and m-d; m-b and m-c have recipients
    assert await twin.expire() == 0
    assert await gw.waiting([never.about, for_failed.about]) == {}
    stored = await gw.waiting([early_b.about, early_c.about])
    assert stored == {early_b.about: early_b, early_c.about: early_c}  # the record stays
    rows = await gw.recipients()
    assert [rows[("s1", r)].status for r in (A, B, C, D)] == [
        SmsStatus.DONE, SmsStatus.EXPIRED, SmsStatus.UNDELIVERED, SmsStatus.FAILED]
    assert (rows[("s1", B)].error_code, rows[("s1", B)].delivered_at) == ("x", start)
    # An id dropped as an orphan is a new one when a receipt names it again.
    gw.wait(1)
    assert await twin.receive(replace(never, received_at=gw.now())) == ReceiptCounts(0, 1, 0)
    assert await twin.receive(receipt("m-a", DELIVERED, gw.now())) == ReceiptCounts(1, 0, 0)
    await twin.check()


async def test_refunds_follow_the_setting_once_each_through_the_ledger(
    uow_factory: UnitOfWorkFactory, policy: ReceiptPolicy,
) -> None:
    twin = await _twin(uow_factory, policy)
    gw = twin.gateway
    s1 = await twin.accept("s1", [A, B, C, D], share=5)
    s2 = await twin.accept("s2", [A, B, C], share=7)
    gw.wait(1)
    assert await twin.fail(s1, A)  # refunded as undeliverable, whatever the setting
    for n, r in enumerate((B, C, D)):
        assert await twin.done(s1, r, f"s1-{n}")
    # s2's are kept first, applied by the answers (the refund's share: the delivery's).
    await twin.receive(*(receipt(f"s2-{n}", rep, gw.now(), error_code=f"{n}")
                         for n, rep in enumerate((DELIVERED, UNDELIVERED, EXPIRED))))
    gw.wait(1)
    for n, r in enumerate((A, B, C)):
        assert await twin.done(s2, r, f"s2-{n}")
    # s1's after (the refund's share: the charge over its recipients).
    await twin.receive(*(receipt(f"s1-{n}", rep, gw.now())
                         for n, rep in enumerate((DELIVERED, UNDELIVERED, EXPIRED))))
    # Every receipt again, and an answer again: nothing more moves or is refunded.
    await twin.receive(*(receipt(f"s{s}-{n}", EXPIRED, gw.now())
                         for s in (1, 2) for n in range(3)))
    assert not (await gw.answer(s1, done(B, "s1-0"))).verdicts[0]
    balance, _ = await gw.ledger()
    refunds = await gw.refunds()
    if policy.refund_undelivered:
        assert {k: tx.amount for k, tx in refunds.items()} == {
            refund_id("s1", A): 5, refund_id("s1", C): 5, refund_id("s1", D): 5,
            refund_id("s2", B): 7, refund_id("s2", C): 7}
        assert balance == 1000 - 20 - 21 + 15 + 14
    else:
        assert list(refunds) == [refund_id("s1", A)]
        assert balance == 1000 - 20 - 21 + 5
    await twin.check()


async def test_a_repeat_of_a_kept_receipt_is_a_duplicate_and_goes_with_the_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """The first receipt for an id wins while it is kept too: the repeat changes
    nothing, and when the first is dropped as an orphan the id has no receipt."""
    twin = await _twin(uow_factory, ReceiptPolicy(orphan_ttl=TTL))
    gw = twin.gateway
    sms = await twin.accept("s1", [A], share=1)
    await twin.receive(receipt("m-a", DELIVERED, gw.now()))
    gw.wait(40)
    await twin.receive(receipt("m-a", UNDELIVERED, gw.now()))
    gw.wait(30)
    await twin.expire()  # the first is past the orphan time: gone, with its repeat
    assert await twin.done(sms, A, "m-a")
    await twin.check()


# --- any interleaving, held to the desk ----------------------------------------------

RECIPIENTS = ("+989121000000", "+989121000001", "+989121000002", "+989121000003")
UNKNOWN = len(RECIPIENTS)  # a receipt for an id no recipient ever has
SHARES = {"a": 3, "b": 5}  # recipients 0, 1 in SMS a; 2, 3 in SMS b


@dataclass(frozen=True)
class Answer:
    n: int


@dataclass(frozen=True)
class Fail:
    n: int


@dataclass(frozen=True)
class Report:
    batch: tuple[tuple[int, Reported, str, bool], ...]  # (n, status, error code, done_at?)


@dataclass(frozen=True)
class Resend:
    """The previous batch again, as it was (the operator never saw our answer)."""


@dataclass(frozen=True)
class Wait:
    seconds: int


@dataclass(frozen=True)
class Sweep:
    """The orphan sweep."""


Step = Answer | Fail | Report | Resend | Wait | Sweep


def scripts(max_size: int) -> st.SearchStrategy[list[Step]]:
    who = st.integers(0, len(RECIPIENTS) - 1)
    reports = st.lists(st.tuples(st.integers(0, UNKNOWN), st.sampled_from(Reported),
                                 st.sampled_from(["", "34"]), st.booleans()),
                       min_size=1, max_size=3)
    answer, fail = st.builds(Answer, who), st.builds(Fail, who)
    report = st.builds(Report, reports.map(tuple))
    wait = st.builds(Wait, st.one_of(st.integers(1, 90), st.sampled_from([30, 60, 61])))
    step: st.SearchStrategy[Step] = st.one_of(  # weighted by repeating
        answer, answer, answer, fail, report, report, report, st.just(Resend()),
        wait, wait, st.just(Sweep()), st.just(Sweep()),
    )
    return st.lists(step, min_size=min(10, max_size), max_size=max_size)


def _sms(n: int) -> str:
    return "a" if n < 2 else "b"


def _message_id(prefix: str, n: int) -> str:
    return f"{prefix}never" if n == UNKNOWN else f"{prefix}m{n}"


def _receipts(step: Report, prefix: str, clock: FakeClock) -> list[Receipt]:
    now = clock.now()
    return [receipt(_message_id(prefix, n), reported, now, error_code=code,
                    done_at=now - timedelta(seconds=1) if said else None)
            for n, reported, code, said in step.batch]


async def play(
    uow_factory: UnitOfWorkFactory, script: Sequence[Step], refund: bool, customer: int,
    prefix: str,
) -> None:
    twin = Twin(Gateway(uow_factory, ReceiptPolicy(refund, TTL), customer))
    gw = twin.gateway
    await gw.top_up(100)
    deliveries = {sms: await twin.accept(f"{prefix}{sms}", RECIPIENTS[i:i + 2], share)
                  for i, (sms, share) in zip((0, 2), SHARES.items(), strict=True)}
    last: list[Receipt] = []
    for step in script:
        if isinstance(step, Answer):
            await twin.done(deliveries[_sms(step.n)], RECIPIENTS[step.n],
                            _message_id(prefix, step.n))
        elif isinstance(step, Fail):
            await twin.fail(deliveries[_sms(step.n)], RECIPIENTS[step.n])
        elif isinstance(step, Report | Resend):
            last = _receipts(step, prefix, gw.clock) if isinstance(step, Report) else last
            if last:
                await twin.receive(*last)
        elif isinstance(step, Wait):
            gw.wait(step.seconds)
        else:
            await twin.expire()
    await twin.check()
    event(f"len(script) {len(script) // 10 * 10}+")
    for what, happened in (("applied by an answer", twin.applied_by_answers),
                           ("applied by the intake", twin.applied - twin.applied_by_answers),
                           ("duplicates", twin.duplicates), ("orphans", twin.orphans),
                           ("refunds", len(twin.desk_refunds))):
        event(f"{what}: {'some' if happened else 'none'}")


@settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])
@given(script=scripts(40), refund=st.booleans())
async def test_any_interleaving_in_memory_ends_as_the_desk_says(
    script: list[Step], refund: bool,
) -> None:
    await play(InMemoryDatabase().uow, script, refund, 1, "")


_examples = iter(range(1, 10**9))


async def _sweep_everything(uow_factory: UnitOfWorkFactory) -> None:
    """Drop the orphans earlier examples left: the sweeps of this one count its own."""
    later = ReceiptIntake(uow_factory, FakeClock(T0 + timedelta(days=3650)),
                          ReceiptPolicy(orphan_ttl=TTL))
    while await later.expire_orphans():
        pass


@pytest.mark.parametrize("uow_factory", ["sqlite", "mariadb"], indirect=True)
@settings(max_examples=50, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(script=scripts(25), refund=st.booleans())
async def test_any_interleaving_on_sql_ends_as_the_desk_says(
    uow_factory: UnitOfWorkFactory, script: list[Step], refund: bool,
) -> None:
    # One store for every example: each its own customer, SMS and operator ids.
    example = next(_examples)
    await _sweep_everything(uow_factory)
    await play(uow_factory, script, refund, example, f"x{example}-")


# --- MariaDB: receipts racing their answers ----------------------------------------

ROUNDS = 40
PER_ROUND = 6
SWEEP_ROUNDS = 40
T = TypeVar("T")


async def _after(delay: float, work: Awaitable[T]) -> T:
    await asyncio.sleep(delay)
    return await work


@pytest.mark.parametrize("uow_factory", ["mariadb"], indirect=True)
async def test_receipts_racing_their_answers_apply_once(uow_factory: UnitOfWorkFactory) -> None:
    """Each round: two receipt batches (one resending part of the other every third
    round) and the two answers naming the same ids, each its own transaction on
    its own connection, started together. Whatever commits first, every receipt
    is applied once: by the intake if the answer is in, else kept and applied by
    the answer."""
    rng = random.Random(int(os.environ.get("SMSGW_TEST_RACE_SEED", "25")))
    gw = Gateway(uow_factory, ReceiptPolicy(refund_undelivered=True, orphan_ttl=TTL))
    await gw.top_up(10**6)
    sent: dict[OperatorMessage, tuple[str, str, Receipt]] = {}
    for round_ in range(ROUNDS):
        recipients = [f"+98912{round_:03d}{i:04d}" for i in range(PER_ROUND)]
        sms = f"race-{round_}"
        delivery = await gw.accept(sms, recipients, share=7)
        ids = {r: f"{sms}-m{i}" for i, r in enumerate(recipients)}
        batch = [receipt(ids[r], rng.choice(list(Reported)), gw.now(),
                         error_code=rng.choice(["", "34"])) for r in recipients]
        sent.update({r.about: (sms, recipient, r) for r, recipient in zip(batch, recipients,
                                                                          strict=True)})
        first, second = batch[: PER_ROUND // 2], batch[PER_ROUND // 2:]
        if round_ % 3 == 0:
            second = second + first[:2]
        answers = [recipients[::2], recipients[1::2]]
        delays = [rng.random() * 0.004 for _ in range(4)]

        (one, two), answered = await asyncio.gather(
            asyncio.gather(_after(delays[0], gw.take(*first)),
                           _after(delays[1], gw.take(*second))),
            asyncio.gather(*(_after(delay, gw.answer(delivery, *(done(r, ids[r]) for r in part)))
                             for delay, part in zip(delays[2:], answers, strict=True))))
        assert [len(s.verdicts[0]) for s in answered] == [len(a) for a in answers]
        by_answer_1, by_answer_2 = (len(s.receipts.applied) for s in answered)
        taken = ReceiptCounts(*(a + b for a, b in zip(
            (one.applied, one.kept, one.duplicates),
            (two.applied, two.kept, two.duplicates), strict=True)))
        assert taken.applied + by_answer_1 + by_answer_2 == PER_ROUND, round_
        assert taken.kept == by_answer_1 + by_answer_2, round_
        assert taken.duplicates == len(first) + len(second) - PER_ROUND, round_

    rows = await gw.recipients()
    stored = await gw.waiting(sent)
    assert stored == {about: r for about, (_, _, r) in sent.items()}
    refunds = await gw.refunds()  # also: the balance is the sum of the ledger
    for about, (sms, recipient, r) in sent.items():
        row = rows[(sms, recipient)]
        assert (row.status, row.message_id, row.error_code, row.delivered_at) == (
            r.reported.status, about.message_id, r.error_code, r.received_at)
        assert row.status in RECEIPT_STATUSES  # none left DONE with a receipt on record
        tx = refunds.get(refund_id(sms, recipient))
        if r.reported is DELIVERED:
            assert tx is None
        else:
            assert tx is not None and tx.amount == 7 and tx.type is TransactionType.REFUND
    assert len(refunds) == sum(r.reported is not DELIVERED for _, _, r in sent.values())
    balance, _ = await gw.ledger()
    assert balance == 10**6 - 7 * PER_ROUND * ROUNDS + 7 * len(refunds)


@pytest.mark.parametrize("uow_factory", ["mariadb"], indirect=True)
async def test_the_orphan_sweep_racing_an_answer_drops_or_leaves_applied(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Receipts kept just past the orphan time, their answer and the sweep at once:
    either the answer applies them (and their record stays) or the sweep drops
    them first (and the recipients stay DONE); never both."""
    rng = random.Random(int(os.environ.get("SMSGW_TEST_RACE_SEED", "25")))
    gw = Gateway(uow_factory, ReceiptPolicy(refund_undelivered=True, orphan_ttl=TTL))
    await gw.top_up(10**6)
    swept = 0
    sent: dict[tuple[str, str], Receipt] = {}
    for round_ in range(SWEEP_ROUNDS):
        recipients = [f"+98913{round_:03d}{i:04d}" for i in range(4)]
        delivery = await gw.accept(f"sweep-{round_}", recipients, share=7)
        kept = [receipt(f"sweep-{round_}-m{i}", UNDELIVERED, gw.now(), error_code="e1")
                for i in range(len(recipients))]
        assert await gw.take(*kept) == ReceiptCounts(0, len(kept), 0)
        sent.update(((delivery.sms_identifier, r), k)
                    for r, k in zip(recipients, kept, strict=True))
        gw.wait(TTL.total_seconds() + 1)
        outcomes = [done(r, k.about.message_id) for r, k in zip(recipients, kept, strict=True)]
        _, gone = await asyncio.gather(
            _after(rng.random() * 0.003, gw.answer(delivery, *outcomes)),
            _after(rng.random() * 0.003, gw.expire()))
        swept += gone

    rows = await gw.recipients()
    stored = await gw.waiting(r.about for r in sent.values())
    dropped = 0
    for key, r in sent.items():
        row = rows[key]
        if r.about in stored:  # applied by the answer: its record stays
            assert (row.status, row.error_code, row.delivered_at) == (
                SmsStatus.UNDELIVERED, "e1", r.received_at), key
        else:  # dropped first: the answer found nothing to apply
            assert row.status is SmsStatus.DONE, key
            dropped += 1
    assert swept == dropped
    refunds = await gw.refunds()
    assert set(refunds) == {refund_id(*key) for key in sent if rows[key].status
                            is SmsStatus.UNDELIVERED}
