"""The ledger and state-machine invariants, as a stateful property.

Hypothesis drives the real use cases (top up, send, relay, deliver, redeliver,
redrive) on the in-memory database, with operators and a bus whose behaviour it
chooses, and after every step checks the rules the gateway promises:

- every balance equals the sum of its account's transactions, and is never negative;
- a balance also equals the model: top-ups - charges + refunds of FAILED recipients;
- transaction ids are unique; each accepted SMS has exactly one charge, of its quote;
- a refund exists iff its recipient is FAILED, at most one per (sms, recipient),
  of exactly that recipient's share;
- a refused send (402, idempotency conflict) leaves the state identical;
- a terminal status never changes.

At the end everything is relayed and delivered: every accepted recipient is DONE or FAILED.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from smsgw_core.errors import IdempotencyConflict, InsufficientBalance
from smsgw_core.ledger import TransactionType, charge_id, refund_id
from smsgw_core.messages import MessageType, SmsStatus, normalize_recipients
from smsgw_core.operators import ErrorClass, OutgoingSms
from smsgw_core.outbox import RetryPolicy
from smsgw_core.pricing import Tariff, quote
from smsgw_core.services.accounts import Accounts, TopUp
from smsgw_core.services.deliver import Deliverer
from smsgw_core.services.relay import OutboxRelay
from smsgw_core.services.send_sms import Accepted, SendSms, SmsSender
from smsgw_core.testing import (
    CountingCircuitBreaker,
    FakeClock,
    InMemoryDatabase,
    RecordingBus,
    ScriptedOperator,
    SequentialIds,
)

T = TypeVar("T")

USERS = st.integers(1, 4)  # user 4 is never topped up unless hypothesis picks it
NUMBERS = ["09128582812", "091285284834", "+989121234567", "09120000003", "09350000013"]
TEXTS = ["hi", "a" * 161, "سلام", "€" * 81, "otp 1234 😀"]
MODES = ["picky", "transient", "ok", "permanent", "crash"]


class WorkerCrash(BaseException):
    """The worker dies mid-send (as on kill -9 or cancellation), leaving recipients SENDING.

    A BaseException, because failover treats an ordinary exception from an
    operator adapter as that operator's transient failure.
    """


@dataclass(frozen=True)
class AcceptedSms:
    customer_id: int
    recipients: tuple[str, ...]
    cost: int
    share: int


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.db = InMemoryDatabase()
        self.clock = FakeClock()
        self.ids = SequentialIds()
        self.bus = RecordingBus()
        self.tariff = Tariff()
        self.modes = {"A": "ok", "B": "ok"}
        operators = [ScriptedOperator(n, self._behaviour(n)) for n in ("A", "B")]
        breaker = CountingCircuitBreaker(self.clock, threshold=3, reset=timedelta(seconds=30))
        self.accounts = Accounts(self.db.uow, self.clock, self.ids)
        self.sender = SmsSender(self.db.uow, self.clock, self.ids, self.tariff)
        policy = RetryPolicy()
        self.relayer = OutboxRelay(self.db.uow, self.bus, self.clock, policy, batch_size=3)
        self.deliverer = Deliverer(self.db.uow, self.clock, operators, breaker)
        # the model
        self.topped_up: dict[int, int] = {}
        self.keyed_topups: dict[tuple[int, str], tuple[TopUp, int]] = {}
        self.accepted: dict[str, AcceptedSms] = {}
        self.keyed_sends: dict[tuple[int, str], tuple[SendSms, Accepted]] = {}
        self.seen_status: dict[tuple[str, str], SmsStatus] = {}
        self.next_delivery = 0

    def _behaviour(self, name: str) -> Any:
        def answer(sms: OutgoingSms) -> str | ErrorClass:
            mode = self.modes[name]
            if mode == "crash":
                raise WorkerCrash(name)
            if mode == "transient":
                return ErrorClass.TRANSIENT
            if mode == "permanent" or (mode == "picky" and sms.recipient.endswith("3")):
                return ErrorClass.PERMANENT
            return f"{name}:{sms.reference}"

        return answer

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self._drain()
        finally:
            self.loop.close()

    # --- rules ------------------------------------------------------------------------

    @initialize(
        amounts=st.lists(st.integers(0, 150), min_size=3, max_size=3),
        a=st.sampled_from(MODES),
        b=st.sampled_from(MODES),
    )
    def start(self, amounts: list[int], a: str, b: str) -> None:
        """Users 1-3 start with some money (0: no account), user 4 with none; A and B
        start in any mode."""
        for user, amount in enumerate(amounts, start=1):
            if amount:
                self.top_up(user, amount, None)
        self.modes.update(A=a, B=b)

    @rule(user=USERS, amount=st.integers(1, 60), key=st.none() | st.sampled_from(["t1", "t2"]))
    def top_up(self, user: int, amount: int, key: str | None) -> None:
        command = TopUp(user, amount, idempotency_key=key)
        before, commits = copy.deepcopy(self.db.state), self.db.commits
        previous = self.keyed_topups.get((user, key)) if key is not None else None
        try:
            balance = self.run(self.accounts.top_up(command))
        except IdempotencyConflict:
            event("top-up: idempotency conflict")
            assert previous is not None
            assert previous[0].fingerprint() != command.fingerprint()
            assert (self.db.state, self.db.commits) == (before, commits)
            return
        if previous is not None:  # a replay: the first answer, nothing written
            event("top-up: replayed")
            assert previous[0].fingerprint() == command.fingerprint()
            assert balance == previous[1]
            assert (self.db.state, self.db.commits) == (before, commits)
            return
        self.topped_up[user] = self.topped_up.get(user, 0) + amount
        if key is not None:
            self.keyed_topups[(user, key)] = (command, balance)
        assert balance == self.model_balance(user)

    @rule(
        user=USERS,
        text=st.sampled_from(TEXTS),
        recipients=st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=4),
        type=st.sampled_from(MessageType),
        key=st.none() | st.sampled_from(["s1", "s2"]),
    )
    def send(
        self, user: int, text: str, recipients: list[str], type: MessageType, key: str | None
    ) -> None:
        command = SendSms(user, text, tuple(recipients), type, key)
        distinct = normalize_recipients(recipients)
        priced = quote(text, distinct, type, self.tariff)
        before, commits = copy.deepcopy(self.db.state), self.db.commits
        balance_before = before.balances.get(user)
        previous = self.keyed_sends.get((user, key)) if key is not None else None
        try:
            accepted = self.run(self.sender.send(command))
        except InsufficientBalance:
            event("send: refused, insufficient balance")
            assert previous is None
            assert balance_before is None or balance_before < priced.cost
            assert (self.db.state, self.db.commits) == (before, commits)
            return
        except IdempotencyConflict:
            event("send: idempotency conflict")
            assert previous is not None
            assert previous[0].fingerprint() != command.fingerprint()
            assert (self.db.state, self.db.commits) == (before, commits)
            return
        if previous is not None:  # a replay: same answer, nothing written
            event("send: replayed")
            assert previous[0].fingerprint() == command.fingerprint()
            assert accepted == previous[1]
            assert (self.db.state, self.db.commits) == (before, commits)
            return
        event("send: accepted")
        assert accepted.sms_identifier not in self.accepted
        assert (accepted.cost, accepted.recipients) == (priced.cost, len(distinct))
        assert balance_before is not None and balance_before >= priced.cost  # affordable
        self.accepted[accepted.sms_identifier] = AcceptedSms(
            user, tuple(distinct), priced.cost, priced.share()
        )
        if key is not None:
            self.keyed_sends[(user, key)] = (command, accepted)
        assert self.db.state.balances[user] == balance_before - priced.cost

    @rule(group=st.lists(
        st.tuples(USERS, st.sampled_from(TEXTS),
                  st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3),
                  st.sampled_from(MessageType)),
        min_size=1, max_size=5,
    ))
    def send_group(self, group: list[tuple[int, str, list[str], MessageType]]) -> None:
        """Concurrent sends sharing one transaction: each answered as if alone, in order."""
        left = dict(self.db.state.balances)
        answers = self.run(self.sender.send_many(
            [SendSms(user, text, tuple(numbers), kind) for user, text, numbers, kind in group]
        ))
        assert len(answers) == len(group)
        for (user, text, numbers, kind), answer in zip(group, answers, strict=True):
            distinct = normalize_recipients(numbers)
            priced = quote(text, distinct, kind, self.tariff)
            affordable = left.get(user, -1) >= priced.cost
            if isinstance(answer, InsufficientBalance):
                event("send_group: one refused")
                assert not affordable
                continue
            event("send_group: one accepted")
            assert isinstance(answer, Accepted) and affordable
            left[user] -= priced.cost
            assert (answer.cost, answer.recipients) == (priced.cost, len(distinct))
            self.accepted[answer.sms_identifier] = AcceptedSms(
                user, tuple(distinct), priced.cost, priced.share()
            )
        assert self.db.state.balances == left

    @rule()
    def relay(self) -> None:
        self.run(self.relayer.relay_once())

    @rule(failing=st.booleans())
    def bus_health(self, failing: bool) -> None:
        self.bus.fail_with = ConnectionError("broker down") if failing else None

    # 25 h: past the validity of everything accepted so far
    @rule(seconds=st.sampled_from([1, 5, 31, 300, 90_000]))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule(operator=st.sampled_from(["A", "B"]), mode=st.sampled_from(MODES))
    def operator_mode(self, operator: str, mode: str) -> None:
        self.modes[operator] = mode

    @precondition(lambda self: bool(self.bus.published))
    @rule(index=st.integers(0, 10_000))
    def deliver(self, index: int) -> None:
        """Deliver a published message: a first delivery or a duplicate one."""
        delivery = self.bus.published[index % len(self.bus.published)]
        try:
            report = self.run(self.deliverer.deliver(delivery))
        except WorkerCrash:
            event("deliver: worker crashed")
            return
        event(f"deliver: done={report.done > 0} failed={report.failed > 0} "
              f"skipped={report.skipped > 0}")
        assert report.done + report.failed + report.skipped == len(delivery.recipients)
        if report.deferred:
            event("deliver: deferred (no operator available)")

    @precondition(lambda self: self.next_delivery < len(self.bus.published))
    @rule()
    def deliver_next(self) -> None:
        """Deliver the oldest published message not delivered by this rule yet."""
        self.next_delivery += 1
        self.deliver(self.next_delivery - 1)

    @rule()
    def relay_and_deliver(self) -> None:
        """The happy pipeline in one step: publish what is due, deliver what was published."""
        self.relay()
        while self.next_delivery < len(self.bus.published):
            self.deliver_next()

    @rule(stalled_seconds=st.sampled_from([0, 60]), quiet=st.booleans())
    def redrive(self, stalled_seconds: int, quiet: bool) -> None:
        lanes = list(MessageType) if quiet else []
        self.run(self.relayer.redrive(timedelta(seconds=stalled_seconds), lanes))

    @rule()
    def drain(self) -> None:
        self._drain()

    def _drain(self) -> None:
        """Heal the bus and the workers, then relay and deliver until nothing is unfinished."""
        self.bus.fail_with = None
        for name, mode in self.modes.items():
            if mode == "crash":
                self.modes[name] = "ok"
        for _ in range(20):
            if all(m.status.terminal for _, m in self.db.state.messages):
                break
            # past every backoff, lease and breaker; an operator left "transient" defers
            # its messages until their validity (24 h) ends, and they expire
            self.clock.advance(timedelta(hours=2))
            self.run(self.relayer.redrive(timedelta(0), list(MessageType)))
            while self.run(self.relayer.relay_once()).published:
                pass
            for delivery in list(self.bus.published):
                if any(not self.status(delivery.sms_identifier, r).terminal
                       for r in delivery.recipients):
                    self.run(self.deliverer.deliver(delivery))
        unfinished = [m for _, m in self.db.state.messages if not m.status.terminal]
        assert not unfinished, unfinished
        self.check_ledger()
        self.check_statuses()

    # --- helpers and invariants -------------------------------------------------------

    def status(self, sms_identifier: str, recipient: str) -> SmsStatus:
        [status] = [
            m.status for _, m in self.db.state.messages
            if (m.sms_identifier, m.recipient) == (sms_identifier, recipient)
        ]
        return status

    def model_balance(self, user: int) -> int:
        state = self.db.state
        failed_refunds = sum(
            self.accepted[m.sms_identifier].share
            for _, m in state.messages
            if m.customer_id == user and m.status is SmsStatus.FAILED
        )
        charges = sum(a.cost for a in self.accepted.values() if a.customer_id == user)
        return self.topped_up.get(user, 0) - charges + failed_refunds

    @invariant()
    def check_ledger(self) -> None:
        state = self.db.state
        txs = [t for _, t in state.transactions]
        ids = [t.transaction_id for t in txs]
        assert len(ids) == len(set(ids)), "a transaction id was applied twice"
        assert {t.customer_id for t in txs} == set(state.balances)
        for user, balance in state.balances.items():
            assert balance >= 0
            assert balance == sum(t.amount for t in txs if t.customer_id == user)
            assert balance == self.model_balance(user)

        by_id = {t.transaction_id: t for t in txs}
        charges = [t for t in txs if t.type is TransactionType.CHARGE]
        assert len(charges) == len(self.accepted)
        for sms_identifier, sms in self.accepted.items():
            assert by_id[charge_id(sms_identifier)].amount == -sms.cost

        refunds = [t for t in txs if t.type is TransactionType.REFUND]
        failed = [m for _, m in state.messages if m.status is SmsStatus.FAILED]
        assert len(refunds) == len(failed)
        for m in failed:
            refund = by_id[refund_id(m.sms_identifier, m.recipient)]
            assert refund.customer_id == m.customer_id
            assert refund.amount == self.accepted[m.sms_identifier].share

    @invariant()
    def check_statuses(self) -> None:
        rows = {(m.sms_identifier, m.recipient): m for _, m in self.db.state.messages}
        expected = {
            (sms_identifier, r)
            for sms_identifier, sms in self.accepted.items()
            for r in sms.recipients
        }
        assert set(rows) == expected
        for key, m in rows.items():
            previous = self.seen_status.get(key)
            if previous is not None and previous.terminal:
                assert m.status is previous, f"{key} left terminal {previous}"
            if m.status is SmsStatus.DONE:
                assert m.provider in ("A", "B")
            self.seen_status[key] = m.status


LedgerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
