"""Status webhooks, the domain (smsgw_core/webhooks.py): the retry schedule and what an
attempt leaves an event as, the event ids and payloads of status moves, which moves
a customer is told of, and the secrets that sign during a rotation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw_core.messages import SmsStatus
from smsgw_core.webhooks import (
    RETRY_DELAYS,
    ROTATION_OVERLAP,
    SUBSCRIBABLE,
    Attempt,
    Endpoint,
    EventState,
    EventType,
    StatusChange,
    WebhookEvent,
    event_id,
    event_of,
    event_type,
    events_for,
    outcome,
    retry_delay,
)
from smsgw_core.webhooks import test_event as make_test_event  # not a test of pytest's

T0 = datetime(2026, 12, 7, tzinfo=UTC)
ATTEMPTS = 10  # in all: the first, and one after each delay
RECEIPT_STATUSES = (SmsStatus.DELIVERED, SmsStatus.UNDELIVERED, SmsStatus.EXPIRED)
jitters = st.floats(-1.0, 1.0, allow_nan=False)


def body(event: WebhookEvent) -> Any:
    return json.loads(event.body)


def pending(attempts: int) -> WebhookEvent:
    """An event as the delivery holds it during its `attempts`-th attempt."""
    return WebhookEvent(event_id("sms-1", "0912", 1), 1, EventType.SENT, b"{}", T0,
                        attempts=attempts, next_at=T0)


def change(status: SmsStatus, previous: SmsStatus = SmsStatus.SENDING, customer: int = 1,
           recipient: str = "09120000001", operator: str = "A",
           error_code: str = "") -> StatusChange:
    return StatusChange(customer, "sms-1", recipient, status, previous, operator, error_code)


# --- the retry schedule -----------------------------------------------------------------


def test_ten_attempts_in_all_over_about_three_days() -> None:
    delays = [retry_delay(n, 0.0) for n in range(1, ATTEMPTS)]
    assert all(d is not None for d in delays)
    assert retry_delay(ATTEMPTS, 0.0) is None  # the tenth failure is the last
    assert retry_delay(0, 0.0) is None
    assert delays == list(RETRY_DELAYS)
    assert delays[0] == timedelta(seconds=5)
    assert delays == sorted(delays), "the waits never shorten"  # type: ignore[type-var]
    total = sum(RETRY_DELAYS, timedelta())
    assert timedelta(days=2.5) < total < timedelta(days=3.5)
    # At the ends of the jitter, the whole schedule stays within 20 % of that.
    for jitter, share in ((-1.0, 0.8), (1.0, 1.2)):
        stretched = sum((retry_delay(n, jitter) or timedelta() for n in range(1, ATTEMPTS)),
                        timedelta())
        assert abs(stretched - total * share) < timedelta(milliseconds=1)


@given(st.integers(1, ATTEMPTS - 1), st.floats(-1e6, 1e6, allow_nan=False))
def test_each_wait_is_within_twenty_percent_of_its_nominal_length(
    attempts: int, jitter: float,
) -> None:
    nominal = RETRY_DELAYS[attempts - 1]
    delay = retry_delay(attempts, jitter)
    assert delay is not None
    tolerance = timedelta(microseconds=1)
    assert nominal * 0.8 - tolerance <= delay <= nominal * 1.2 + tolerance
    if -1.0 <= jitter <= 1.0:  # inside the range, the jitter is taken as it is
        assert abs(delay - nominal * (1 + 0.2 * jitter)) <= tolerance


# --- outcome: what an attempt leaves an event as ---------------------------------------


@given(st.integers(200, 299), st.integers(1, ATTEMPTS), jitters)
def test_a_2xx_delivers_at_any_attempt(code: int, attempts: int, jitter: float) -> None:
    attempt = Attempt(T0, code)
    result = outcome(pending(attempts), attempt, jitter)
    assert (result.state, result.next_at, result.attempt) == (
        EventState.DELIVERED, None, attempt)
    assert result.event_id == pending(attempts).id


@given(st.integers(1, ATTEMPTS), jitters)
def test_a_410_is_dead_at_once(attempts: int, jitter: float) -> None:
    attempt = Attempt(T0, 410, answer="gone")
    assert attempt.gone and not attempt.delivered
    result = outcome(pending(attempts), attempt, jitter)
    assert (result.state, result.next_at) == (EventState.DEAD, None)


failures = st.one_of(
    st.none(), st.integers(100, 199), st.integers(300, 409), st.integers(411, 599),
)


@given(failures, st.integers(1, ATTEMPTS - 1), jitters)
def test_any_other_answer_is_pending_again_after_its_delay(
    code: int | None, attempts: int, jitter: float,
) -> None:
    at = T0 + timedelta(minutes=attempts)
    attempt = Attempt(at, code, "" if code is not None else "timed out")
    result = outcome(pending(attempts), attempt, jitter)
    assert result.state is EventState.PENDING
    assert result.next_at == at + retry_delay(attempts, jitter)  # type: ignore[operator]


@given(failures, jitters)
def test_a_failure_at_the_last_attempt_is_dead(code: int | None, jitter: float) -> None:
    result = outcome(pending(ATTEMPTS), Attempt(T0, code), jitter)
    assert (result.state, result.next_at) == (EventState.DEAD, None)


def test_the_schedule_can_be_set() -> None:
    delays = (timedelta(seconds=1), timedelta(seconds=2))  # SMSGW_WEBHOOK_RETRY_S=1,2
    assert [retry_delay(n, 0.0, delays) for n in (0, 1, 2, 3)] == [
        None, timedelta(seconds=1), timedelta(seconds=2), None]
    assert retry_delay(2, 1.0, delays) == timedelta(seconds=2.4)
    at = T0 + timedelta(minutes=1)
    results = [outcome(pending(n), Attempt(at, 500), 0.0, delays) for n in (1, 2, 3)]
    assert [(r.state, r.next_at) for r in results] == [
        (EventState.PENDING, at + timedelta(seconds=1)),
        (EventState.PENDING, at + timedelta(seconds=2)), (EventState.DEAD, None)]
    assert outcome(pending(3), Attempt(at, 200), 0.0, delays).state is EventState.DELIVERED


def test_attempt_delivered_and_gone() -> None:
    assert [Attempt(T0, c).delivered for c in (None, 199, 200, 204, 299, 300, 410)] == [
        False, False, True, True, True, False, False]
    assert [Attempt(T0, c).gone for c in (None, 200, 404, 410, 500)] == [
        False, False, False, True, False]


# --- event ids ---------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1,
                max_size=20)
moves = st.tuples(names, names, st.integers(1, 2))


@given(moves)
def test_an_event_id_is_derived_from_its_move(move: tuple[str, str, int]) -> None:
    first = event_id(*move)
    assert first == event_id(*move)
    assert first.startswith("msg_") and len(first) == 36
    assert set(first[4:]) <= set("abcdefghijklmnopqrstuvwxyz234567")


@given(st.lists(moves, min_size=2, max_size=20, unique=True))
def test_distinct_moves_have_distinct_ids(some: list[tuple[str, str, int]]) -> None:
    assert len({event_id(*m) for m in some}) == len(some)


def test_the_sequence_the_recipient_and_the_sms_each_change_the_id() -> None:
    ids = {event_id("s", "r", 1), event_id("s", "r", 2), event_id("s", "q", 1),
           event_id("t", "r", 1), event_id("sr", "", 1), event_id("", "sr", 1)}
    assert len(ids) == 6


# --- the events of status moves -------------------------------------------------------


@pytest.mark.parametrize(("status", "kind", "sequence", "previous"), [
    (SmsStatus.DONE, EventType.SENT, 1, SmsStatus.SENDING),
    (SmsStatus.FAILED, EventType.FAILED, 1, SmsStatus.SENDING),
    (SmsStatus.DELIVERED, EventType.DELIVERED, 2, SmsStatus.DONE),
    (SmsStatus.UNDELIVERED, EventType.UNDELIVERED, 2, SmsStatus.DONE),
    (SmsStatus.EXPIRED, EventType.EXPIRED, 2, SmsStatus.DONE),
])
def test_the_event_of_each_move(
    status: SmsStatus, kind: EventType, sequence: int, previous: SmsStatus,
) -> None:
    assert event_type(status) is kind
    event = event_of(change(status, previous, customer=7, error_code="34"), T0)
    assert event is not None
    assert (event.id, event.customer_id, event.type, event.state, event.attempts) == (
        event_id("sms-1", "09120000001", sequence), 7, kind, EventState.PENDING, 0)
    assert event.created_at == event.next_at == T0
    assert body(event) == {
        "type": kind.value,
        "timestamp": T0.isoformat(),
        "data": {
            "message_id": "sms-1", "recipient": "09120000001",
            "status": status.value.lower(), "previous_status": previous.value.lower(),
            "error_code": "34", "operator": "A", "sequence": sequence,
        },
    }


def test_empty_error_code_and_operator_are_null() -> None:
    event = event_of(change(SmsStatus.FAILED, operator="", error_code=""), T0)
    assert event is not None
    assert body(event)["data"]["error_code"] is None
    assert body(event)["data"]["operator"] is None


def test_moves_still_in_delivery_make_no_event() -> None:
    for status in (SmsStatus.PENDING, SmsStatus.SENDING):
        assert event_type(status) is None
        assert event_of(change(status, SmsStatus.PENDING), T0) is None


def test_a_recipients_sent_and_receipt_events_differ_and_order_by_sequence() -> None:
    sent = event_of(change(SmsStatus.DONE), T0)
    delivered = event_of(change(SmsStatus.DELIVERED, SmsStatus.DONE), T0)
    assert sent is not None and delivered is not None
    assert sent.id != delivered.id
    assert body(sent)["data"]["sequence"] < body(delivered)["data"]["sequence"]
    # The same move again (another process settling it too) is the same event.
    assert event_of(change(SmsStatus.DONE), T0 + timedelta(seconds=1)).id == sent.id  # type: ignore[union-attr]


def test_the_test_event_is_never_subscribable() -> None:
    assert EventType.TEST not in SUBSCRIBABLE
    assert set(SUBSCRIBABLE) == set(EventType) - {EventType.TEST}
    event = make_test_event(3, "msg_test_1", T0)
    assert (event.id, event.customer_id, event.type, event.next_at) == (
        "msg_test_1", 3, EventType.TEST, T0)
    assert body(event) == {"type": "webhook.test", "timestamp": T0.isoformat(),
                           "data": {"customer_id": 3}}


def test_events_for_keeps_only_what_each_customer_subscribed_to() -> None:
    changes = [
        change(SmsStatus.DONE, customer=1, recipient="r1"),
        change(SmsStatus.DELIVERED, SmsStatus.DONE, customer=1, recipient="r1"),
        change(SmsStatus.FAILED, customer=1, recipient="r2"),
        change(SmsStatus.DONE, customer=2, recipient="r3"),
        change(SmsStatus.EXPIRED, SmsStatus.DONE, customer=2, recipient="r3"),
        change(SmsStatus.DONE, customer=3, recipient="r4"),  # no endpoint
        change(SmsStatus.DONE, customer=4, recipient="r5"),  # subscribed to nothing
        change(SmsStatus.PENDING, SmsStatus.SENDING, customer=1, recipient="r6"),
    ]
    subscribed = {
        1: frozenset({EventType.SENT, EventType.DELIVERED}),
        2: frozenset({EventType.EXPIRED, EventType.FAILED}),
        4: frozenset[EventType](),
    }
    events = events_for(changes, subscribed, T0)
    assert [(e.customer_id, e.type, body(e)["data"]["recipient"]) for e in events] == [
        (1, EventType.SENT, "r1"), (1, EventType.DELIVERED, "r1"),
        (2, EventType.EXPIRED, "r3"),
    ]
    assert events_for([], subscribed, T0) == []
    assert events_for(changes, {}, T0) == []


# --- the secrets that sign -----------------------------------------------------------


def test_sealed_secrets_during_and_after_the_rotation_overlap() -> None:
    plain = Endpoint(1, "https://example.com/hook", frozenset(SUBSCRIBABLE), "new", T0)
    assert plain.sealed_secrets(T0) == ["new"]
    rotated = Endpoint(1, "https://example.com/hook", frozenset(SUBSCRIBABLE), "new", T0,
                       previous_secret="old", previous_until=T0 + ROTATION_OVERLAP)
    assert timedelta(hours=24) == ROTATION_OVERLAP
    assert rotated.sealed_secrets(T0) == ["new", "old"]
    assert rotated.sealed_secrets(T0 + ROTATION_OVERLAP - timedelta(seconds=1)) == [
        "new", "old"]
    assert rotated.sealed_secrets(T0 + ROTATION_OVERLAP) == ["new"]
    assert rotated.sealed_secrets(T0 + timedelta(days=30)) == ["new"]
    # A previous secret without an end (or an end without a secret) never signs.
    no_end = Endpoint(1, "https://example.com/hook", frozenset(SUBSCRIBABLE), "new", T0,
                      previous_secret="old")
    assert no_end.sealed_secrets(T0) == ["new"]
    no_secret = Endpoint(1, "https://example.com/hook", frozenset(SUBSCRIBABLE), "new", T0,
                         previous_until=T0 + ROTATION_OVERLAP)
    assert no_secret.sealed_secrets(T0) == ["new"]
