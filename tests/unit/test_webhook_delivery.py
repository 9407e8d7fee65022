"""Status webhooks, the services: the events settle() and the receipts write with the
moves they report, the delivery loop (WebhookDelivery: retries, 410, fair turns, the
per-customer cap, leases, telemetry), and the endpoint use cases (WebhookEndpoints).

On the in-memory database, with small fakes of the webhook ports: a sender that
answers per URL as scripted (and can hang), a box that seals reversibly, an
address check that refuses what it is told to.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from core_world import N1, N2, World, fund, send
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from smsgw_core.errors import Conflict, InvalidRequest, NotFound, StorageUnavailable
from smsgw_core.messages import MessageType, RecipientMessage, SmsStatus
from smsgw_core.operators import ErrorClass
from smsgw_core.outbox import DeliveryJob
from smsgw_core.pagination import PageRequest, decode_cursor
from smsgw_core.receipts import OperatorMessage, Receipt, ReceiptPolicy, Reported
from smsgw_core.services.receipts import ReceiptCounts, ReceiptIntake
from smsgw_core.services.settle import Settlement, Verdict, settle
from smsgw_core.services.status_events import record_events
from smsgw_core.services.webhook_delivery import WebhookDelivery
from smsgw_core.services.webhook_endpoints import Registered, WebhookEndpoints
from smsgw_core.testing import FakeClock, InMemoryDatabase, SequentialIds
from smsgw_core.validity import FailureReason
from smsgw_core.webhooks import (
    MAX_URL_LENGTH,
    RETRY_DELAYS,
    ROTATION_OVERLAP,
    SUBSCRIBABLE,
    Attempt,
    EventOutcome,
    EventState,
    EventType,
    StatusChange,
    WebhookEvent,
    event_id,
    event_of,
)

T0 = datetime(2026, 12, 7, 12, tzinfo=UTC)
ALL = [t.value for t in SUBSCRIBABLE]
SENT, DELIVERED = EventType.SENT.value, EventType.DELIVERED.value

# --- fakes of the webhook ports ---------------------------------------------------------


class ReversibleBox:
    """A SecretBox that seals by a prefix: what the store holds is plainly not the secret,
    and opening anything else fails as a real box does."""

    def __init__(self) -> None:
        self.made = 0

    def new_secret(self) -> str:
        self.made += 1
        return f"whsec_{self.made}"

    def seal(self, secret: str) -> str:
        return "sealed:" + secret

    def open(self, sealed: str) -> str:
        if not sealed.startswith("sealed:"):
            raise ValueError("not sealed by this box")
        return sealed.removeprefix("sealed:")


@dataclass(frozen=True)
class Sent:
    url: str
    event_id: str
    body: bytes
    secrets: tuple[str, ...]
    at: datetime


@dataclass
class ScriptedSender:
    """A WebhookSender answering per URL: the scripted codes in turn (None: no answer),
    200 once they run out; a URL with an unset `hang` event waits for it first."""

    answers: dict[str, list[int | None]] = field(default_factory=dict)
    hang: dict[str, asyncio.Event] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    most: Counter[str] = field(default_factory=Counter)  # the most in flight at once, per URL
    most_in_all: int = 0
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)  # each attempt's

    async def send(self, url: str, event_id: str, body: bytes, secrets: Sequence[str],
                   at: datetime) -> Attempt:
        self.sent.append(Sent(url, event_id, body, tuple(secrets), at))
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        self.in_flight[url] += 1
        self.most[url] = max(self.most[url], self.in_flight[url])
        self.most_in_all = max(self.most_in_all, self.in_flight.total())
        try:
            gate = self.hang.get(url)
            if gate is not None:
                await gate.wait()
            script = self.answers.get(url)
            code = script.pop(0) if script else 200
        finally:
            self.in_flight[url] -= 1
        return Attempt(at, code, "" if code is not None else "timed out",
                       "" if code is None else f"answer {code}", 0.25)

    def ids(self, url: str | None = None) -> list[str]:
        return [s.event_id for s in self.sent if url is None or s.url == url]


class Addresses:
    """A WebhookAddresses refusing plain http and the hosts it is given."""

    def __init__(self, refused_hosts: Sequence[str] = ("10.0.0.1",)) -> None:
        self.refused_hosts = set(refused_hosts)
        self.asked: list[str] = []

    async def refused(self, url: str) -> str | None:
        self.asked.append(url)
        if not url.startswith("https://"):
            return "only https"
        host = url.removeprefix("https://").split("/")[0]
        return f"{host} is a private address" if host in self.refused_hosts else None


@dataclass
class RecordingWebhookTelemetry:
    attempts: list[tuple[EventState, int | None, float]] = field(default_factory=list)
    disabled: int = 0
    oldest: list[float] = field(default_factory=list)
    recorded: asyncio.Event = field(default_factory=asyncio.Event)  # set at each attempt

    def webhook_attempt(self, state: EventState, status_code: int | None,
                        seconds: float) -> None:
        self.attempts.append((state, status_code, seconds))
        self.recorded.set()

    def webhook_disabled(self) -> None:
        self.disabled += 1

    def webhook_oldest(self, seconds: float) -> None:
        self.oldest.append(seconds)


# --- the world of these tests -------------------------------------------------------------


@dataclass
class Hooks:
    """The endpoint use cases and the delivery loop over one in-memory database."""

    db: InMemoryDatabase = field(default_factory=InMemoryDatabase)
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0))
    box: ReversibleBox = field(default_factory=ReversibleBox)
    sender: ScriptedSender = field(default_factory=ScriptedSender)
    addresses: Addresses = field(default_factory=Addresses)
    telemetry: RecordingWebhookTelemetry = field(default_factory=RecordingWebhookTelemetry)
    jitter: float = 0.0  # every retry at its nominal delay unless a test says otherwise
    endpoints: WebhookEndpoints = field(init=False)

    def __post_init__(self) -> None:
        self.endpoints = WebhookEndpoints(self.db.uow, self.clock, self.box, self.addresses,
                                          SequentialIds("t"))

    def delivery(self, **settings: Any) -> WebhookDelivery:
        return WebhookDelivery(self.db.uow, self.clock, self.sender, self.box,
                               self.telemetry, jitter=lambda: self.jitter, **settings)

    async def register(self, customer: int, events: Sequence[str] = tuple(ALL)) -> Registered:
        return await self.endpoints.put(customer, url(customer), events)

    async def queue(self, customer: int, count: int, sms: str = "") -> list[str]:
        """`count` sent events of the customer, written as settle() writes them."""
        now = self.clock.now()
        changes = [StatusChange(customer, sms or f"sms-{customer}", f"0912{n:07d}",
                                SmsStatus.DONE, SmsStatus.SENDING, "A")
                   for n in range(count)]
        async with self.db.uow() as uow:
            written = await record_events(uow, changes, now)
            await uow.commit()
        assert written == count
        return [event_id(c.sms_identifier, c.recipient, 1) for c in changes]

    def events(self, customer: int | None = None) -> list[WebhookEvent]:
        """The stored events, in the order written."""
        return [e for _, e in sorted(self.db.state.webhook_events.items())
                if customer is None or e.customer_id == customer]

    def event(self, id_: str) -> WebhookEvent:
        [found] = [e for e in self.events() if e.id == id_]
        return found

    def states(self, customer: int) -> Counter[EventState]:
        return Counter(e.state for e in self.events(customer))

    def attempts(self, id_: str) -> list[Attempt]:
        return self.db.state.webhook_attempts.get(self.event(id_).position, [])

    def later(self, delta: timedelta) -> None:
        self.clock.advance(delta)


def url(customer: int) -> str:
    return f"https://c{customer}.example/hook"


async def one_pass(delivery: WebhookDelivery) -> int:
    """A pass of the loop whose attempts all end: what it started."""
    await delivery.record()
    started = await delivery.start_due()
    await delivery.drain()
    return started


async def let_run(rounds: int = 5) -> None:
    """Let the attempts that do not hang end (a fake's answer takes no time)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


# === the events settle() and the receipts write =======================================


def data(event: WebhookEvent) -> Any:
    return json.loads(event.body)["data"]


async def hook(world: World, customer: int, events: Sequence[str]) -> WebhookEndpoints:
    endpoints = WebhookEndpoints(world.db.uow, world.clock, ReversibleBox(), Addresses(),
                                 SequentialIds("t"))
    await endpoints.put(customer, url(customer), events)
    return endpoints


def world_events(world: World, customer: int | None = None) -> list[WebhookEvent]:
    return [e for _, e in sorted(world.db.state.webhook_events.items())
            if customer is None or e.customer_id == customer]


def receipt(message_id: str, reported: Reported, at: datetime, code: str = "",
            operator: str = "A") -> Receipt:
    return Receipt(OperatorMessage(operator, message_id), reported, code, None, at)


async def test_a_subscriber_is_sent_the_sent_event_at_settle_and_the_delivered_on_receipt(
    world: World,
) -> None:
    await hook(world, 1, [SENT, DELIVERED])
    await fund(world)
    accepted = await send(world, (N1,))
    await world.relay_and_deliver()
    [row] = world.messages(accepted.sms_identifier)
    assert row.status is SmsStatus.DONE
    [sent] = world_events(world)
    assert (sent.id, sent.customer_id, sent.type, sent.state) == (
        event_id(accepted.sms_identifier, N1, 1), 1, EventType.SENT, EventState.PENDING)
    assert data(sent) == {
        "message_id": accepted.sms_identifier, "recipient": N1, "status": "done",
        "previous_status": "sending", "error_code": None, "operator": "A", "sequence": 1}

    world.clock.advance(timedelta(seconds=3))
    intake = ReceiptIntake(world.db.uow, world.clock)
    assert await intake.take([receipt(row.message_id, Reported.DELIVERED, world.clock.now())]
                             ) == ReceiptCounts(1, 0, 0)
    first, delivered = world_events(world)
    assert first == sent
    assert (delivered.id, delivered.type, delivered.created_at) == (
        event_id(accepted.sms_identifier, N1, 2), EventType.DELIVERED, world.clock.now())
    assert data(delivered)["previous_status"] == "done"
    assert [data(e)["sequence"] for e in (first, delivered)] == [1, 2]
    # A receipt sent again changes nothing, and writes nothing.
    assert await intake.take([receipt(row.message_id, Reported.DELIVERED, world.clock.now())]
                             ) == ReceiptCounts(0, 0, 1)
    assert len(world_events(world)) == 2


async def test_a_receipt_kept_before_the_answer_makes_its_event_when_settle_applies_it(
    world: World,
) -> None:
    await hook(world, 1, ALL)
    await fund(world)
    world.a.behaviour = lambda sms: "op-1"
    accepted = await send(world, (N1,))
    await world.relay.relay_once()
    [delivery] = world.bus.published
    intake = ReceiptIntake(world.db.uow, world.clock)
    got = await intake.take([receipt("op-1", Reported.UNDELIVERED, world.clock.now(), "34")])
    assert got == ReceiptCounts(0, 1, 0)
    assert world_events(world) == []  # kept: nothing moved, nothing to tell

    world.clock.advance(timedelta(seconds=1))
    await world.deliverer.deliver(delivery)
    [row] = world.messages(accepted.sms_identifier)
    assert row.status is SmsStatus.UNDELIVERED
    sent, undelivered = world_events(world)
    assert [(e.type, data(e)["sequence"]) for e in (sent, undelivered)] == [
        (EventType.SENT, 1), (EventType.UNDELIVERED, 2)]
    assert undelivered.id == event_id(accepted.sms_identifier, N1, 2)
    assert data(undelivered)["error_code"] == "34"
    assert data(undelivered)["previous_status"] == "done"
    assert sent.created_at == undelivered.created_at == world.clock.now()  # one commit


async def test_unsubscribed_types_and_customers_produce_nothing(world: World) -> None:
    await hook(world, 1, [DELIVERED])  # not sent, not failed
    endpoints3 = await hook(world, 3, ALL)
    async with world.db.uow() as uow:
        await uow.webhooks.disable(3, world.clock.now(), "410 Gone from the endpoint")
        await uow.commit()
    assert (await endpoints3.get(3)).disabled_at is not None
    refuse = {N2}
    for operator in (world.a, world.b):
        name = operator.name
        operator.behaviour = lambda sms, name=name: (
            ErrorClass.PERMANENT if sms.recipient in refuse else f"{name}-{sms.reference}")
    for customer in (1, 2, 3):  # 2 has no endpoint, 3's is disabled
        await fund(world, user=customer)
        await send(world, (N1, N2), user=customer)
    await world.relay_and_deliver()
    done = [m for m in world.messages() if m.status is SmsStatus.DONE]
    assert {m.customer_id for m in done} == {1, 2, 3}
    assert {m.status for m in world.messages() if m.recipient == N2} == {SmsStatus.FAILED}
    assert world_events(world) == []  # DONE and FAILED: subscribed to by no enabled one

    intake = ReceiptIntake(world.db.uow, world.clock)
    counts = await intake.take([receipt(m.message_id, Reported.DELIVERED, world.clock.now(),
                                        operator=m.provider) for m in done])
    assert counts.applied == 3
    [delivered] = world_events(world)
    assert (delivered.customer_id, delivered.type, data(delivered)["recipient"]) == (
        1, EventType.DELIVERED, N1)


async def test_an_sms_the_relay_expires_tells_of_each_recipient_failed(world: World) -> None:
    await hook(world, 1, [EventType.FAILED.value])
    await fund(world)
    accepted = await send(world, (N1, N2))
    world.clock.advance(world.validity.validity)
    await world.relay.relay_once()
    assert {m.status for m in world.messages()} == {SmsStatus.FAILED}
    events = world_events(world)
    assert sorted(data(e)["recipient"] for e in events) == sorted([N1, N2])
    for e in events:
        assert e.type is EventType.FAILED
        assert e.id == event_id(accepted.sms_identifier, data(e)["recipient"], 1)
        assert (data(e)["error_code"], data(e)["sequence"]) == ("expired", 1)


# --- a property: any interleaving of answers and receipts -----------------------------


TTL = timedelta(seconds=60)
ONE, OTHER = 1, 2  # customer ONE's endpoint takes a drawn subset; OTHER's none or disabled
RECIPIENTS = 4  # of ONE's SMS; OTHER's SMS has 2
PATHS = {  # the moves a recipient made to reach a status: it never moves back
    SmsStatus.PENDING: [], SmsStatus.SENDING: [], SmsStatus.DONE: [SmsStatus.DONE],
    SmsStatus.FAILED: [SmsStatus.FAILED],
    **{s: [SmsStatus.DONE, s] for s in (SmsStatus.DELIVERED, SmsStatus.UNDELIVERED,
                                        SmsStatus.EXPIRED)},
}
STATUS_EVENTS = {SmsStatus.DONE: EventType.SENT, SmsStatus.FAILED: EventType.FAILED,
                 SmsStatus.DELIVERED: EventType.DELIVERED,
                 SmsStatus.UNDELIVERED: EventType.UNDELIVERED,
                 SmsStatus.EXPIRED: EventType.EXPIRED}


@dataclass(frozen=True)
class Answers:
    """One settle transaction: verdicts for recipients (n: 0-3 ONE's, 4-5 OTHER's), a
    recipient named twice as two racing deliveries would."""

    verdicts: tuple[tuple[int, SmsStatus], ...]


@dataclass(frozen=True)
class Reports:
    batch: tuple[tuple[int, Reported], ...]  # n == 6: an id nothing knows


@dataclass(frozen=True)
class Wait:
    seconds: int


@dataclass(frozen=True)
class Sweep:
    """The orphan sweep."""


Step = Answers | Reports | Wait | Sweep
who = st.integers(0, RECIPIENTS + 1)
verdict_statuses = st.sampled_from(
    [SmsStatus.DONE, SmsStatus.DONE, SmsStatus.FAILED, SmsStatus.PENDING])
answers = st.builds(Answers, st.lists(st.tuples(who, verdict_statuses), min_size=1,
                                      max_size=3).map(tuple))
reports = st.builds(Reports, st.lists(st.tuples(st.integers(0, RECIPIENTS + 2),
                                                st.sampled_from(Reported)),
                                      min_size=1, max_size=3).map(tuple))
scripts = st.lists(st.one_of(  # weighted by repeating
    answers, answers, reports, reports, st.builds(Wait, st.sampled_from([1, 30, 61])),
    st.just(Sweep()),
), min_size=4, max_size=40)
subscriptions = st.one_of(st.just(frozenset(SUBSCRIBABLE)),
                          st.frozensets(st.sampled_from(SUBSCRIBABLE)))


def _who(n: int) -> tuple[int, str, str]:
    """Recipient n: its customer, SMS and number."""
    return (ONE, "s1", f"0912000000{n}") if n < RECIPIENTS else (OTHER, "s2", f"0935000000{n}")


async def _accept(db: InMemoryDatabase, clock: FakeClock) -> dict[str, DeliveryJob]:
    """ONE's and OTHER's SMS, accepted and claimed: every recipient SENDING."""
    now = clock.now()
    jobs = {}
    async with db.uow() as uow:
        for customer, sms, ns in ((ONE, "s1", range(RECIPIENTS)),
                                  (OTHER, "s2", range(RECIPIENTS, RECIPIENTS + 2))):
            numbers = tuple(_who(n)[2] for n in ns)
            await uow.messages.add([
                RecipientMessage(sms, customer, r, MessageType.NORMAL, SmsStatus.PENDING, "",
                                 now, now) for r in numbers])
            jobs[sms] = DeliveryJob(sms, customer, MessageType.NORMAL, "hi", numbers, 0, now)
        await uow.commit()
        await uow.messages.claim_many(list(jobs), now)
        await uow.commit()
    return jobs


async def _answer(db: InMemoryDatabase, clock: FakeClock, jobs: dict[str, DeliveryJob],
                  step: Answers, policy: ReceiptPolicy) -> None:
    now = clock.now()
    async with db.uow() as uow:
        # A deferred recipient is claimed again before its next answer (as the deliverer does).
        again: dict[str, list[str]] = {}
        for n, _ in step.verdicts:
            _, sms, number = _who(n)
            again.setdefault(sms, []).append(number)
        await uow.messages.claim_many(list(again), now, only=again)
        settlements = []
        for n, status in step.verdicts:
            _, sms, number = _who(n)
            verdict = Verdict(number, status, "A" if status is SmsStatus.DONE else "",
                              FailureReason.REJECTED if status is SmsStatus.FAILED else None,
                              f"m{n}" if status is SmsStatus.DONE else "")
            settlements.append(Settlement(jobs[sms], [verdict], now))
        await settle(uow, settlements, now, policy)
        await uow.commit()


def _check_events(db: InMemoryDatabase, subscribed: frozenset[EventType]) -> None:
    """Every recipient's events are its moves so far (those subscribed to), in order."""
    events = [e for _, e in sorted(db.state.webhook_events.items())]
    assert len({e.id for e in events}) == len(events), "an event id twice"
    written: dict[tuple[str, str], list[WebhookEvent]] = {}
    for e in events:
        written.setdefault((data(e)["message_id"], data(e)["recipient"]), []).append(e)
    for _, row in db.state.messages:
        key = (row.sms_identifier, row.recipient)
        mine = written.pop(key, [])
        takes = subscribed if row.customer_id == ONE else frozenset()
        moves = [s for s in PATHS[row.status] if STATUS_EVENTS[s] in takes]
        assert [e.type for e in mine] == [STATUS_EVENTS[s] for s in moves], (key, row.status)
        sequences = [data(e)["sequence"] for e in mine]
        assert sequences == sorted(set(sequences)), "sequences do not increase"
        for e in mine:
            assert e.id == event_id(*key, data(e)["sequence"])
            assert e.customer_id == ONE
            status = {v: k for k, v in STATUS_EVENTS.items()}[e.type]
            first = status in (SmsStatus.DONE, SmsStatus.FAILED)
            assert (data(e)["status"], data(e)["previous_status"]) == (
                status.value.lower(), "sending" if first else "done")
            if status is SmsStatus.FAILED:
                assert (data(e)["error_code"], data(e)["operator"]) == ("rejected", None)
            else:
                assert data(e)["operator"] == "A"
    assert written == {}, "an event for no recipient"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts, subscriptions, st.booleans(), st.booleans())
async def test_the_events_of_any_interleaving_are_the_moves_subscribed_to(
    script: list[Step], takes: frozenset[EventType], other_registered: bool, refund: bool,
) -> None:
    db, clock = InMemoryDatabase(), FakeClock(T0)
    endpoints = WebhookEndpoints(db.uow, clock, ReversibleBox(), Addresses(), SequentialIds())
    if takes:
        await endpoints.put(ONE, url(ONE), [t.value for t in takes])
    if other_registered:  # registered, then disabled: it takes nothing
        await endpoints.put(OTHER, url(OTHER), ALL)
        async with db.uow() as uow:
            await uow.webhooks.disable(OTHER, clock.now(), "410")
            await uow.commit()
    policy = ReceiptPolicy(refund_undelivered=refund, orphan_ttl=TTL)
    intake = ReceiptIntake(db.uow, clock, policy)
    jobs = await _accept(db, clock)
    for step in script:
        if isinstance(step, Answers):
            await _answer(db, clock, jobs, step, policy)
        elif isinstance(step, Reports):
            await intake.take([receipt(f"m{n}", reported, clock.now())
                               for n, reported in step.batch])
        elif isinstance(step, Wait):
            clock.advance(timedelta(seconds=step.seconds))
        else:
            await intake.expire_orphans()
        _check_events(db, takes)  # after each commit: the moves and their events are one
    for kind in sorted({e.type.value for e in db.state.webhook_events.values()}):
        event(f"an event {kind}")
    settled_by_answer = [e for e in db.state.webhook_events.values()
                         if data(e)["sequence"] == 2 and e.created_at in {
                             f.created_at for f in db.state.webhook_events.values()
                             if f.id == event_id(data(e)["message_id"], data(e)["recipient"], 1)}]
    event(f"receipt events written with their sent event: {bool(settled_by_answer)}")


# === WebhookDelivery =====================================================================


async def test_every_event_is_delivered_once_on_a_2xx(hooks: Hooks) -> None:
    for customer in (1, 2):
        await hooks.register(customer)
    ids = await hooks.queue(1, 3) + await hooks.queue(2, 3)
    delivery = hooks.delivery()
    assert await one_pass(delivery) == 6
    assert sorted(hooks.sender.ids()) == sorted(ids)
    for s in hooks.sender.sent:
        event = hooks.event(s.event_id)
        assert s.url == url(event.customer_id)
        assert s.body == event.body
        assert s.secrets == (f"whsec_{event.customer_id}",)  # opened, never the sealed
        assert (event.state, event.attempts) == (EventState.DELIVERED, 1)
        assert [a.status_code for a in hooks.attempts(event.id)] == [200]
    assert await one_pass(delivery) == 0
    hooks.later(timedelta(days=7))
    assert await one_pass(delivery) == 0
    assert len(hooks.sender.sent) == 6


@pytest.mark.parametrize("failures", [1, 3, len(RETRY_DELAYS)])
async def test_a_receiver_failing_its_first_answers_gets_the_event_after_as_many_retries(
    hooks: Hooks, failures: int,
) -> None:
    hooks.jitter = 1.0  # each wait its longest
    await hooks.register(1)
    [id_] = await hooks.queue(1, 1)
    codes: list[int | None] = [500, None, 503, 429, 404, 301, 502, None, 400]
    hooks.sender.answers[url(1)] = codes[:failures]
    delivery = hooks.delivery()
    for n in range(1, failures + 1):
        tried_at = hooks.clock.now()
        assert await one_pass(delivery) == 1
        event = hooks.event(id_)
        wait = RETRY_DELAYS[n - 1] * 1.2
        assert (event.state, event.attempts, event.next_at) == (
            EventState.PENDING, n, tried_at + wait)
        hooks.later(wait - timedelta(milliseconds=1))
        assert await one_pass(delivery) == 0  # not before its time
        hooks.later(timedelta(milliseconds=1))
    assert await one_pass(delivery) == 1
    event = hooks.event(id_)
    assert (event.state, event.attempts) == (EventState.DELIVERED, failures + 1)
    assert hooks.sender.ids() == [id_] * (failures + 1)  # the same webhook-id each time
    assert [a.status_code for a in hooks.attempts(id_)] == [*codes[:failures], 200]


async def test_an_event_every_attempt_fails_is_dead_after_the_tenth(hooks: Hooks) -> None:
    hooks.jitter = -1.0
    await hooks.register(1)
    [id_] = await hooks.queue(1, 1)
    hooks.sender.answers[url(1)] = [500] * 20
    delivery = hooks.delivery()
    for _ in range(15):
        await one_pass(delivery)
        hooks.later(RETRY_DELAYS[-1])
    event = hooks.event(id_)
    assert (event.state, event.attempts) == (EventState.DEAD, 10)
    assert len(hooks.sender.sent) == 10


async def test_a_410_disables_the_endpoint_and_buries_its_pending_events(hooks: Hooks) -> None:
    await hooks.register(1)
    await hooks.register(2)
    await hooks.queue(1, 4)
    ids2 = await hooks.queue(2, 3)
    hooks.sender.answers[url(1)] = [410]
    delivery = hooks.delivery(per_customer=1)
    assert await one_pass(delivery) == 2  # one of each
    endpoint = await hooks.endpoints.get(1)
    assert endpoint.disabled_at == hooks.clock.now()
    assert "410" in endpoint.disabled_reason
    assert hooks.states(1) == Counter({EventState.DEAD: 4})
    assert hooks.telemetry.disabled == 1
    for _ in range(3):
        await one_pass(delivery)
    assert len(hooks.sender.ids(url(1))) == 1  # nothing more sent to it
    assert sorted(hooks.sender.ids(url(2))) == sorted(ids2)
    assert hooks.states(2) == Counter({EventState.DELIVERED: 3})
    # A disabled endpoint takes no new events either, until it is PUT again.
    async with hooks.db.uow() as uow:
        assert 1 not in await uow.webhooks.subscriptions({1, 2})
    with pytest.raises(Conflict):
        await hooks.endpoints.test(1)
    await hooks.register(1)
    await hooks.queue(1, 1, sms="after")
    assert await one_pass(delivery) == 1


async def test_a_hanging_customer_holds_at_most_its_slots_while_others_are_delivered(
    hooks: Hooks,
) -> None:
    for customer in (1, 2):
        await hooks.register(customer)
    await hooks.queue(1, 6)  # written first: the longest due
    ids2 = await hooks.queue(2, 10)
    hooks.sender.hang[url(1)] = gate = asyncio.Event()
    delivery = hooks.delivery(concurrency=4, per_customer=2)
    assert await delivery.start_due() == 4  # two each
    for _ in range(10):
        await let_run()
        await delivery.record()
        await delivery.start_due()
    assert sorted(hooks.sender.ids(url(2))) == sorted(ids2)
    assert hooks.states(2) == Counter({EventState.DELIVERED: 10})
    assert hooks.sender.most[url(1)] == 2 and hooks.sender.in_flight[url(1)] == 2
    assert hooks.sender.most[url(2)] <= 2
    # The rest of customer 1's stay in the store, not leased.
    assert sorted(e.attempts for e in hooks.events(1)) == [0, 0, 0, 0, 1, 1]
    gate.set()
    await delivery.drain()
    for _ in range(3):
        await one_pass(delivery)
    assert hooks.states(1) == Counter({EventState.DELIVERED: 6})
    assert hooks.sender.most[url(1)] == 2


async def test_events_beyond_the_slots_stay_in_the_store(hooks: Hooks) -> None:
    for customer in range(1, 6):
        await hooks.register(customer)
        await hooks.queue(customer, 10)
        hooks.sender.hang[url(customer)] = asyncio.Event()
    delivery = hooks.delivery(concurrency=6, per_customer=2)
    assert await delivery.start_due() == 6
    for _ in range(3):
        await let_run()
        assert await delivery.start_due() == 0  # no slot free
    assert hooks.sender.in_flight.total() == 6 == hooks.sender.most_in_all
    assert len(delivery._tasks) <= delivery.concurrency
    leased = [e for e in hooks.events() if e.attempts]
    assert len(leased) == 6
    assert Counter(e.customer_id for e in leased) == Counter({1: 2, 2: 2, 3: 2})
    now = hooks.clock.now()
    waiting = [e for e in hooks.events() if not e.attempts]
    assert len(waiting) == 44
    assert all(e.state is EventState.PENDING and e.next_at is not None and e.next_at <= now
               for e in waiting)
    for gate in hooks.sender.hang.values():
        gate.set()
    await delivery.drain()
    for _ in range(12):
        await one_pass(delivery)
    assert hooks.states(1) + hooks.states(5) == Counter({EventState.DELIVERED: 20})
    assert hooks.sender.most_in_all == 6


async def test_the_loop_delivers_one_customer_while_another_hangs(hooks: Hooks) -> None:
    for customer in (1, 2):
        await hooks.register(customer)
    await hooks.queue(1, 5)
    ids2 = await hooks.queue(2, 12)
    hooks.sender.hang[url(1)] = gate = asyncio.Event()
    delivery = hooks.delivery(concurrency=3, per_customer=2, poll_s=0.005)
    stop = asyncio.Event()
    loop = asyncio.create_task(delivery.run(stop, oldest_every_s=0.01))

    async def until(done: Callable[[], bool]) -> None:
        """Until `done` holds, looked at after each attempt is recorded."""
        async with asyncio.timeout(5):
            while not done():
                hooks.telemetry.recorded.clear()
                await hooks.telemetry.recorded.wait()

    try:
        await until(lambda: hooks.states(2)[EventState.DELIVERED] == 12)
        assert sorted(hooks.sender.ids(url(2))) == sorted(ids2)
        assert hooks.sender.most[url(1)] <= 2 and hooks.sender.most_in_all <= 3
        gate.set()
        await until(lambda: hooks.states(1)[EventState.DELIVERED] == 5)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
    assert len(hooks.sender.sent) == 17
    assert hooks.telemetry.oldest and hooks.telemetry.oldest[-1] >= 0.0


async def test_a_lapsed_lease_sends_the_event_again_with_the_same_id(hooks: Hooks) -> None:
    await hooks.register(1)
    [id_] = await hooks.queue(1, 1)
    hooks.sender.hang[url(1)] = asyncio.Event()
    first = hooks.delivery(lease=timedelta(seconds=60))
    assert await first.start_due() == 1
    await let_run()
    # The process dies mid-attempt: its tasks end, nothing recorded.
    for task in hooks.sender.tasks:
        task.cancel()
    await let_run()
    assert await first.record() == 0
    del first
    del hooks.sender.hang[url(1)]
    event = hooks.event(id_)
    assert (event.state, event.attempts, event.next_at) == (
        EventState.PENDING, 1, T0 + timedelta(seconds=60))

    second = hooks.delivery(lease=timedelta(seconds=60))
    hooks.later(timedelta(seconds=59))
    assert await one_pass(second) == 0  # leased still
    hooks.later(timedelta(seconds=1))
    assert await one_pass(second) == 1
    assert hooks.sender.ids() == [id_, id_]
    event = hooks.event(id_)
    assert (event.state, event.attempts) == (EventState.DELIVERED, 2)
    assert [a.status_code for a in hooks.attempts(id_)] == [200]


async def test_the_longest_waiting_customer_goes_first(hooks: Hooks) -> None:
    await hooks.register(1)
    await hooks.register(2)
    hooks.later(timedelta(seconds=1))
    await hooks.queue(2, 1)
    hooks.later(timedelta(seconds=1))
    await hooks.queue(1, 5)
    delivery = hooks.delivery(concurrency=2, per_customer=1)
    assert await one_pass(delivery) == 2
    assert [hooks.event(i).customer_id for i in hooks.sender.ids()] == [2, 1]
    # One customer's five do not hold the others up: each pass takes one of its.
    assert await one_pass(delivery) == 1


async def test_the_rotated_secrets_both_sign_during_the_overlap(hooks: Hooks) -> None:
    await hooks.register(1)
    await hooks.endpoints.rotate(1)
    await hooks.queue(1, 1, sms="during")
    delivery = hooks.delivery()
    await one_pass(delivery)
    hooks.later(ROTATION_OVERLAP)
    await hooks.queue(1, 1, sms="after")
    await one_pass(delivery)
    assert [s.secrets for s in hooks.sender.sent] == [("whsec_2", "whsec_1"), ("whsec_2",)]


async def test_the_waits_are_the_ones_set(hooks: Hooks) -> None:
    await hooks.register(1)
    [id_] = await hooks.queue(1, 1)
    hooks.sender.answers[url(1)] = [500, 500, 500]
    waits = (timedelta(seconds=1), timedelta(seconds=2))  # 3 attempts in all
    delivery = hooks.delivery(retries=waits)
    for wait in waits:
        tried_at = hooks.clock.now()
        assert await one_pass(delivery) == 1
        assert hooks.event(id_).next_at == tried_at + wait
        hooks.later(wait)
    assert await one_pass(delivery) == 1
    assert (hooks.event(id_).state, len(hooks.sender.sent)) == (EventState.DEAD, 3)


class PickyBox(ReversibleBox):
    """Cannot open what `refused` names: sealed under a key this process lacks."""

    def __init__(self, refused: set[str]) -> None:
        super().__init__()
        self.refused = refused

    def open(self, sealed: str) -> str:
        if sealed in self.refused:
            raise ValueError("sealed under another key")
        return super().open(sealed)


async def test_a_secret_this_process_cannot_open_leaves_its_events_for_one_that_can(
    hooks: Hooks,
) -> None:
    sealed = (await hooks.register(1)).endpoint.secret
    await hooks.register(2)
    [id_] = await hooks.queue(1, 1)
    ids2 = await hooks.queue(2, 2)
    lease = timedelta(seconds=60)
    picky = WebhookDelivery(hooks.db.uow, hooks.clock, hooks.sender, PickyBox({sealed}),
                            hooks.telemetry, lease=lease, jitter=lambda: 0.0)
    assert await one_pass(picky) == 2  # customer 2's; customer 1's left leased
    assert sorted(hooks.sender.ids()) == sorted(ids2)
    event = hooks.event(id_)
    assert (event.state, event.next_at) == (EventState.PENDING, T0 + lease)
    assert hooks.attempts(id_) == []
    hooks.later(lease)
    assert await one_pass(hooks.delivery(lease=lease)) == 1
    assert hooks.event(id_).state is EventState.DELIVERED
    assert hooks.sender.sent[-1].secrets == ("whsec_1",)


async def test_events_of_a_customer_without_an_endpoint_are_dead_unsent(hooks: Hooks) -> None:
    event = event_of(StatusChange(9, "sms-9", N1, SmsStatus.DONE, SmsStatus.SENDING), T0)
    assert event is not None
    id_ = event.id
    async with hooks.db.uow() as uow:  # written by the store's own hand: 9 has no endpoint
        await uow.webhooks.add_events([event])
        await uow.commit()
    delivery = hooks.delivery()
    assert await one_pass(delivery) == 0
    assert hooks.sender.sent == []
    assert hooks.event(id_).state is EventState.DEAD
    [attempt] = hooks.attempts(id_)
    assert (attempt.status_code, attempt.error) == (None, "no endpoint")


async def test_telemetry_counts_what_was_recorded(hooks: Hooks) -> None:
    for customer in (1, 2, 3):
        await hooks.register(customer)
    await hooks.queue(1, 2)
    await hooks.queue(2, 1)
    await hooks.queue(3, 1)
    hooks.sender.answers[url(2)] = [500]
    hooks.sender.answers[url(3)] = [410]
    delivery = hooks.delivery()
    await delivery.start_due()
    await let_run()
    # The database is away when the outcomes are to be recorded: nothing is counted,
    # and the outcomes wait for the next pass.
    hooks.db.fail_commits.append(StorageUnavailable("down"))
    with pytest.raises(StorageUnavailable):
        await delivery.record()
    assert hooks.telemetry.attempts == [] and hooks.telemetry.disabled == 0
    assert await delivery.record() == 4
    assert sorted(hooks.telemetry.attempts, key=repr) == sorted([
        (EventState.DELIVERED, 200, 0.25), (EventState.DELIVERED, 200, 0.25),
        (EventState.PENDING, 500, 0.25), (EventState.DEAD, 410, 0.25)], key=repr)
    assert hooks.telemetry.disabled == 1
    hooks.later(timedelta(seconds=30))
    await delivery.report_oldest()
    assert hooks.telemetry.oldest == [30.0]  # customer 2's, written at T0
    hooks.later(RETRY_DELAYS[0])
    await one_pass(delivery)
    await delivery.report_oldest()
    assert hooks.telemetry.oldest[-1] == 0.0
    assert len(hooks.telemetry.attempts) == 5 and hooks.telemetry.disabled == 1


# === WebhookEndpoints ===================================================================


@pytest.mark.parametrize("events", [[], ["message.bogus"], ["webhook.test"],
                                    [SENT, "message.sent "]])
async def test_put_refuses_events_it_does_not_know(hooks: Hooks, events: list[str]) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await hooks.endpoints.put(1, url(1), events)
    assert refused.value.field == "events"
    assert hooks.db.state.endpoints == {} and hooks.db.commits == 0


@pytest.mark.parametrize("bad", ["http://c1.example/hook", "https://10.0.0.1/hook",
                                 "https://c1.example/" + "x" * MAX_URL_LENGTH])
async def test_put_refuses_a_url_the_guard_refuses(hooks: Hooks, bad: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await hooks.endpoints.put(1, bad, ALL)
    assert refused.value.field == "url"
    assert hooks.db.state.endpoints == {} and hooks.db.commits == 0


async def test_put_answers_the_secret_once_and_stores_it_sealed(hooks: Hooks) -> None:
    registered = await hooks.endpoints.put(1, url(1), [DELIVERED, SENT, SENT])
    assert registered.secret == "whsec_1"
    assert registered.endpoint.secret == "sealed:whsec_1"
    stored = hooks.db.state.endpoints[1]
    assert stored == registered.endpoint
    assert (stored.url, stored.events, stored.created_at, stored.disabled_at) == (
        url(1), frozenset({EventType.DELIVERED, EventType.SENT}), T0, None)
    assert stored.secret != "whsec_1" and hooks.box.open(stored.secret) == "whsec_1"
    shown = await hooks.endpoints.get(1)
    assert shown.secret == "sealed:whsec_1"  # what GET reads carries no plain secret
    assert hooks.addresses.asked == [url(1)]


async def test_get_without_an_endpoint_is_not_found(hooks: Hooks) -> None:
    with pytest.raises(NotFound):
        await hooks.endpoints.get(1)
    await hooks.register(2)
    with pytest.raises(NotFound):
        await hooks.endpoints.get(1)  # another's is not this customer's


async def test_rotate_keeps_the_previous_secret_signing_for_a_day(hooks: Hooks) -> None:
    with pytest.raises(NotFound):
        await hooks.endpoints.rotate(1)
    first = await hooks.register(1)
    hooks.later(timedelta(hours=1))
    rotated = await hooks.endpoints.rotate(1)
    new, old = "sealed:" + rotated.secret, "sealed:" + first.secret
    assert rotated.secret != first.secret and rotated.endpoint.secret == new
    start = hooks.clock.now()
    stored = await hooks.endpoints.get(1)
    assert stored == rotated.endpoint
    assert stored.previous_until == start + ROTATION_OVERLAP
    assert stored.sealed_secrets(start) == [new, old]
    hooks.later(ROTATION_OVERLAP - timedelta(seconds=1))
    assert stored.sealed_secrets(hooks.clock.now()) == [new, old]
    hooks.later(timedelta(seconds=1))
    assert stored.sealed_secrets(hooks.clock.now()) == [new]
    assert (stored.url, stored.events) == (url(1), frozenset(SUBSCRIBABLE))


async def test_delete_buries_the_pending_events(hooks: Hooks) -> None:
    with pytest.raises(NotFound):
        await hooks.endpoints.delete(1)
    await hooks.register(1)
    await hooks.register(2)
    [done] = await hooks.queue(1, 1, sms="early")
    await one_pass(hooks.delivery())
    await hooks.queue(1, 3)
    await hooks.endpoints.test(1)
    await hooks.queue(2, 2)
    await hooks.endpoints.delete(1)
    assert hooks.event(done).state is EventState.DELIVERED
    assert hooks.states(1) == Counter({EventState.DELIVERED: 1, EventState.DEAD: 4})
    assert hooks.states(2) == Counter({EventState.PENDING: 2})
    with pytest.raises(NotFound):
        await hooks.endpoints.get(1)
    with pytest.raises(NotFound):
        await hooks.endpoints.delete(1)
    assert await one_pass(hooks.delivery()) == 2  # customer 2's only


async def test_a_test_event_is_queued_only_for_an_enabled_endpoint(hooks: Hooks) -> None:
    with pytest.raises(NotFound):
        await hooks.endpoints.test(1)
    await hooks.register(1, [DELIVERED])
    event = await hooks.endpoints.test(1)
    assert (event.type, event.customer_id) == (EventType.TEST, 1)
    assert event.id.startswith("msg_t") and len(event.id) <= 40  # the column holds 40
    assert hooks.event(event.id).state is EventState.PENDING
    assert json.loads(event.body)["type"] == "webhook.test"
    async with hooks.db.uow() as uow:
        await uow.webhooks.disable(1, hooks.clock.now(), "410 Gone from the endpoint")
        await uow.commit()
    with pytest.raises(Conflict) as refused:
        await hooks.endpoints.test(1)
    assert "410" in str(refused.value)
    assert len(hooks.events(1)) == 1
    await hooks.register(1)  # PUT again: enabled
    await hooks.endpoints.test(1)
    assert hooks.states(1) == Counter({EventState.DEAD: 1, EventState.PENDING: 1})


async def test_the_events_are_listed_newest_first_by_pages(hooks: Hooks) -> None:
    await hooks.register(1)
    await hooks.register(2)
    ids = await hooks.queue(1, 5)
    await hooks.queue(2, 2)
    await one_pass(hooks.delivery(per_customer=1))  # the oldest delivered
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await hooks.endpoints.events(
            1, None, PageRequest(2, decode_cursor(cursor) if cursor else None))
        seen += [e.id for e in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert (seen, pages) == (ids[::-1], 3)
    [tried] = [e for e in (await hooks.endpoints.events(1, None, PageRequest(5))).items
               if e.attempts]
    assert tried.id == ids[0] and [a.status_code for a in tried.history] == [200]
    delivered = await hooks.endpoints.events(1, EventState.DELIVERED, PageRequest(10))
    assert ([e.id for e in delivered.items], delivered.next_cursor) == ([ids[0]], None)
    exact = await hooks.endpoints.events(1, EventState.PENDING, PageRequest(4))
    assert ([e.id for e in exact.items], exact.next_cursor) == (ids[:0:-1], None)


async def test_replay_makes_a_dead_or_delivered_event_pending_again(hooks: Hooks) -> None:
    await hooks.register(1)
    await hooks.register(2)
    dead, delivered, waiting = await hooks.queue(1, 3)
    [others] = await hooks.queue(2, 1)
    async with hooks.db.uow() as uow:  # dead and delivered by the store's own hand
        leased = await uow.webhooks.claim(1, T0, 2, T0 + timedelta(seconds=60))
        assert [e.id for e in leased] == [dead, delivered]
        await uow.webhooks.finish([
            EventOutcome(dead, Attempt(T0, 500), EventState.DEAD),
            EventOutcome(delivered, Attempt(T0, 200), EventState.DELIVERED)])
        await uow.commit()
    hooks.later(timedelta(hours=1))
    for id_ in (dead, delivered):
        await hooks.endpoints.replay(1, id_)
        event = hooks.event(id_)
        assert (event.state, event.attempts, event.next_at) == (
            EventState.PENDING, 0, hooks.clock.now())
    with pytest.raises(Conflict):
        await hooks.endpoints.replay(1, waiting)
    with pytest.raises(Conflict):
        await hooks.endpoints.replay(1, dead)  # pending now
    with pytest.raises(NotFound):
        await hooks.endpoints.replay(1, "msg_nothing")
    with pytest.raises(NotFound):
        await hooks.endpoints.replay(1, others)  # another customer's
    await one_pass(hooks.delivery())
    assert hooks.states(1) == Counter({EventState.DELIVERED: 3})
    assert Counter(hooks.sender.ids(url(1))) == Counter({dead: 1, delivered: 1, waiting: 1})
