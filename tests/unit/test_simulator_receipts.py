"""The simulators' receipts: the plan they draw from, and the in-process simulator
handing its receipts to a sink that fails now and then."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import pytest

from smsgw_adapters.operators.receipt_plan import (
    Answer,
    Owed,
    ReceiptPlan,
    ReceiptPlanError,
    ReceiptReporter,
)
from smsgw_adapters.operators.simulated import Behaviour, BehaviourError, SimulatedOperator
from smsgw_app.operator_kinds import KINDS, OperatorSpec
from smsgw_core.backoff import Backoff
from smsgw_core.operators import OperatorError, OutgoingSms
from smsgw_core.receipts import OperatorMessage, Receipt, Reported

PLAN = "delivered=0.85,undelivered=0.08,expired=0.02,none=0.05"


class FlakySink:
    """The gateway's intake, in memory: its first `failures` takes raise (the
    database away), the rest keep the receipts."""

    def __init__(self, failures: int = 2) -> None:
        self.failures = failures
        self.calls = 0
        self.taken: list[Receipt] = []
        self.batches: list[int] = []

    async def take(self, receipts: Sequence[Receipt]) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("the database is away")
        self.taken.extend(receipts)
        self.batches.append(len(receipts))
        return None


def sms(n: int) -> OutgoingSms:
    recipient = f"+98912{n:07d}"
    return OutgoingSms(recipient, "hello", f"sms-{n}:{recipient}")


async def until(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


# The plan


def test_a_plan_reads_each_share() -> None:
    plan = ReceiptPlan.parse(PLAN)
    assert plan == ReceiptPlan(delivered=0.85, undelivered=0.08, expired=0.02, none=0.05)
    assert ReceiptPlan.parse(str(plan)) == plan


def test_a_share_not_named_is_none_and_semicolons_separate_too() -> None:
    assert ReceiptPlan.parse("delivered=0.5; expired=0.5") == ReceiptPlan(0.5, 0, 0.5, 0)
    assert ReceiptPlan.parse("none=1") == ReceiptPlan(0, 0, 0, 1)
    assert ReceiptPlan() == ReceiptPlan.parse("delivered=1")


@pytest.mark.parametrize(("text", "problem"), [
    ("delivered=0.9,lost=0.1", "unknown status 'lost'"),
    ("delivered=0.9", "add up to 1, not 0.9"),
    ("delivered=0.6,undelivered=0.6", "add up to 1, not 1.2"),
    ("delivered=1.5,undelivered=-0.5", "share of delivered must be between 0 and 1"),
    ("delivered=nan", "share of delivered must be between 0 and 1"),
    ("delivered=1,delivered=0", "delivered is named twice"),
    ("delivered=all", "share of delivered is not a number"),
    ("delivered", "'delivered' is not status=share"),
    ("", "'' is not status=share"),
])
def test_a_plan_that_cannot_be_says_why(text: str, problem: str) -> None:
    with pytest.raises(ReceiptPlanError, match=problem) as raised:
        ReceiptPlan.parse(text)
    assert isinstance(raised.value, ValueError)


def test_shares_within_a_millionth_of_one_are_one() -> None:
    assert ReceiptPlan.parse("delivered=0.3333333,undelivered=0.3333333,expired=0.3333333")


def test_a_seeded_plan_draws_the_same_fates_again() -> None:
    plan = ReceiptPlan.parse(PLAN)

    def fates(seed: int) -> list[Reported | None]:
        chance = random.Random(seed)
        return [plan.draw(chance) for _ in range(500)]

    assert fates(7) == fates(7) != fates(8)
    assert len(set(fates(7))) == 4  # and not one fate over and over


def test_draws_come_in_the_plan_s_shares() -> None:
    plan, chance, draws = ReceiptPlan.parse(PLAN), random.Random(2024), 20_000
    seen = Counter(plan.draw(chance) for _ in range(draws))
    for fate, share in ((Reported.DELIVERED, 0.85), (Reported.UNDELIVERED, 0.08),
                        (Reported.EXPIRED, 0.02), (None, 0.05)):
        # 4 standard deviations of a binomial share at most (0.01 for delivered)
        assert abs(seen[fate] / draws - share) < 4 * (share * (1 - share) / draws) ** 0.5


def test_a_fate_with_no_share_is_never_drawn() -> None:
    plan, chance = ReceiptPlan.parse("undelivered=1"), random.Random(1)
    assert {plan.draw(chance) for _ in range(1000)} == {Reported.UNDELIVERED}


# The behaviour of a sim:// URL


def test_a_sim_url_asks_for_receipts_and_their_delay() -> None:
    spec = OperatorSpec("A", f"sim://?receipts={PLAN}&receipt_delay_ms=500&seed=3")
    behaviour = Behaviour.parse(spec.params())
    assert behaviour.receipt_plan == ReceiptPlan.parse(PLAN)
    assert behaviour.receipt_delay_ms == 500
    assert Behaviour().receipt_plan is None  # receipts are off unless asked for


@pytest.mark.parametrize(("url", "problem"), [
    ("sim://?receipts=delivered=0.5", "receipts: the shares must add up to 1, not 0.5"),
    ("sim://?receipts=delivered=0.5;bounced=0.5", "receipts: unknown status 'bounced'"),
    ("sim://?receipts=delivered=1&receipt_delay_ms=-1", "receipt_delay_ms must not be negative"),
    ("sim://?receipt_delay_ms=soon", "parameters must be numbers"),
])
def test_a_bad_receipt_parameter_is_one_line_of_configuration_error(
    url: str, problem: str,
) -> None:
    said = KINDS["sim"].problem(OperatorSpec("A", url))
    assert said is not None and said.startswith(problem) and "\n" not in said
    with pytest.raises(BehaviourError):
        Behaviour.parse(OperatorSpec("A", url).params())


# The in-process simulator


async def test_every_accepted_send_is_reported_once_though_the_sink_fails_twice() -> None:
    sink = FlakySink(failures=2)
    operator = SimulatedOperator("A", seed=11, fail_rate=0.1, receipts=PLAN, sink=sink)
    ids: dict[str, str] = {}
    for n in range(2500):
        with contextlib.suppress(OperatorError):  # an outage: not taken, no receipt
            ids[sms(n).reference] = await operator.send(sms(n))
    operator.fail_rate = 0.0  # so that every resend is answered
    resent = {sms(n).reference: await operator.send(sms(n)) for n in range(0, 2500, 7)
              if sms(n).reference in ids}
    try:
        await until(lambda: operator.tally.pending == 0)
    finally:
        await operator.close()
    tally = operator.tally
    assert all(ids[reference] == message_id for reference, message_id in resent.items())
    assert operator.accepted == len(ids) and operator.duplicates == len(resent)
    assert sink.calls > 2 and max(sink.batches) <= 1000
    named = [receipt.about.message_id for receipt in sink.taken]
    assert len(named) == len(set(named))  # nothing twice, resends included
    assert set(named) | set(tally.never) == set(ids.values())  # nothing lost
    assert not set(named) & set(tally.never)
    assert {r.about.message_id: r.reported for r in sink.taken} == tally.by_message
    assert all(r.about == OperatorMessage("A", r.about.message_id) for r in sink.taken)
    assert {r.reported: r.error_code for r in sink.taken} == {
        Reported.DELIVERED: "", Reported.UNDELIVERED: "001", Reported.EXPIRED: "002"}
    assert all(r.done_at is not None and r.done_at.tzinfo is not None for r in sink.taken)
    assert sum(tally.reported.values()) == len(named)
    assert tally.stats()["none"] == len(tally.never) > 0


async def test_a_seeded_simulator_reports_the_same_fates_again() -> None:
    async def fates() -> list[Reported | None]:
        sink = FlakySink(failures=0)
        operator = SimulatedOperator("A", seed=5, fail_rate=0.2, receipts=PLAN, sink=sink)
        taken: list[str] = []
        for n in range(300):
            with contextlib.suppress(OperatorError):
                taken.append(await operator.send(sms(n)))
        try:
            await until(lambda: operator.tally.pending == 0)
        finally:
            await operator.close()
        return [operator.tally.by_message.get(message_id) for message_id in taken]

    assert await fates() == await fates()


async def test_a_receipt_due_before_the_answer_reaches_the_sink_first() -> None:
    sink = FlakySink(failures=0)
    operator = SimulatedOperator("A", latency_ms=400, receipts="delivered=1", sink=sink)
    try:
        message_id = await operator.send(sms(1))
        assert [r.about.message_id for r in sink.taken] == [message_id]
    finally:
        await operator.close()


async def test_a_receipt_waits_for_its_delay() -> None:
    sink = FlakySink(failures=0)
    operator = SimulatedOperator("A", receipts="expired=1", receipt_delay_ms=300, sink=sink)
    try:
        sent = time.monotonic()
        await operator.send(sms(1))
        await until(lambda: sink.taken)
        assert time.monotonic() - sent >= 0.3
    finally:
        await operator.close()


async def test_no_receipts_without_a_plan_or_without_a_sink() -> None:
    sink = FlakySink(failures=0)
    planless = SimulatedOperator("A", sink=sink)
    sinkless = SimulatedOperator.behaving("B", Behaviour(receipts="delivered=1"))
    for operator in (planless, sinkless):
        await operator.send(sms(1))
    await asyncio.sleep(0.2)
    assert sink.calls == 0 and planless.tally.pending == sinkless.tally.pending == 0


async def test_behaving_passes_the_sink_on() -> None:
    sink = FlakySink(failures=0)
    operator = SimulatedOperator.behaving("A", Behaviour(receipts="delivered=1"), sink=sink)
    try:
        message_id = await operator.send(sms(1))
        await until(lambda: sink.taken)
    finally:
        await operator.close()
    assert operator.tally.by_message == {message_id: Reported.DELIVERED}


# The reporter alone: what the HTTP simulator's poster relies on


async def test_a_refused_batch_is_dropped_and_counted_a_failed_one_goes_again() -> None:
    answers = [None, Answer.REFUSED, Answer.ACKNOWLEDGED]
    tries: list[list[str]] = []
    stamps: list[datetime] = []

    async def report(batch: Sequence[Owed], at: datetime) -> Answer | None:
        tries.append([owed.message_id for owed in batch])
        stamps.append(at)
        return answers.pop(0)

    reporter = ReceiptReporter(report, 0, linger_s=0, retry=Backoff.every(0.01))
    reporter.owe("m1", Reported.DELIVERED, time.monotonic())
    await until(lambda: not answers or tries == [["m1"], ["m1"]])
    reporter.owe("m2", Reported.UNDELIVERED, time.monotonic())
    try:
        await until(lambda: reporter.tally.pending == 0 and not answers)
    finally:
        await reporter.close()
    assert tries == [["m1"], ["m1"], ["m2"]]
    assert stamps[0] == stamps[1]  # the same batch, the same done_at, when tried again
    assert reporter.tally.stats() == {"delivered": 0, "undelivered": 1, "expired": 0,
                                      "none": 0, "pending": 0, "refused": 1}


async def test_due_receipts_go_a_thousand_at_most_to_a_batch() -> None:
    batches: list[int] = []

    async def report(batch: Sequence[Owed], at: datetime) -> Answer:
        batches.append(len(batch))
        return Answer.ACKNOWLEDGED

    reporter = ReceiptReporter(report, 0, linger_s=0)
    arrived = time.monotonic()
    for n in range(2500):
        reporter.owe(f"m{n}", Reported.DELIVERED, arrived)
    try:
        await until(lambda: reporter.tally.pending == 0)
    finally:
        await reporter.close()
    assert batches == [1000, 1000, 500]
    assert list(reporter.tally.by_message) == [f"m{n}" for n in range(2500)]  # in order
