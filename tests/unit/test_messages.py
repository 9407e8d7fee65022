"""The per-recipient state machine, recipient normalisation and status parsing."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw_core.errors import InvalidRequest, InvalidTransition
from smsgw_core.messages import (
    MAX_RECIPIENTS,
    MessageType,
    RecipientMessage,
    SmsStatus,
    check_transition,
    normalize_recipients,
)

P, S, D, F = SmsStatus.PENDING, SmsStatus.SENDING, SmsStatus.DONE, SmsStatus.FAILED
RECEIPTS = {SmsStatus.DELIVERED, SmsStatus.UNDELIVERED, SmsStatus.EXPIRED}
# S -> P: deferred; D -> a receipt's status
LEGAL = {(P, S), (S, S), (S, D), (S, F), (S, P)} | {(D, r) for r in RECEIPTS}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def message(status: SmsStatus = P, provider: str = "") -> RecipientMessage:
    return RecipientMessage("sms-1", 7, "09128582812", MessageType.NORMAL, status, provider, T0, T0)


# --- the state machine ----------------------------------------------------------------


@pytest.mark.parametrize(("current", "target"), list(itertools.product(SmsStatus, repeat=2)))
def test_every_pair_of_states(current: SmsStatus, target: SmsStatus) -> None:
    if (current, target) in LEGAL:
        check_transition(current, target)
        moved = message(current).moved_to(target, T0 + timedelta(seconds=1))
        assert moved.status is target
        assert moved.updated_at == T0 + timedelta(seconds=1)
    else:
        with pytest.raises(InvalidTransition) as err:
            check_transition(current, target)
        assert (err.value.current, err.value.target) == (current.value, target.value)
        with pytest.raises(InvalidTransition):
            message(current).moved_to(target, T0)


def test_terminal_and_final_states() -> None:
    assert {s for s in SmsStatus if s.terminal} == {D, F} | RECEIPTS
    assert {s for s in SmsStatus if s.final} == {F} | RECEIPTS


@settings(max_examples=200)
@given(st.lists(st.sampled_from(SmsStatus), max_size=12))
def test_random_walks_follow_the_machine(targets: list[SmsStatus]) -> None:
    """Apply any sequence of moves: legal ones happen, illegal ones raise and change nothing."""
    current = message()
    for step, target in enumerate(targets):
        before = current
        try:
            current = current.moved_to(target, T0 + timedelta(seconds=step + 1), provider="A")
        except InvalidTransition:
            assert (before.status, target) not in LEGAL
            assert current == before
        else:
            assert (before.status, target) in LEGAL
        if before.status.final:
            assert current == before  # final never changes
        if before.status.terminal:
            assert current.status.terminal  # never back into a delivery
        # the identity of the row never changes
        assert (current.sms_identifier, current.recipient, current.customer_id) == (
            "sms-1", "09128582812", 7,
        )
        assert current.created_at == T0


def test_moving_keeps_the_provider_unless_given() -> None:
    sending = message().moved_to(S, T0)
    assert sending.provider == ""
    done = sending.moved_to(D, T0, provider="B")
    assert done.provider == "B"
    again = message(S, provider="A").moved_to(S, T0)
    assert again.provider == "A"


def test_priority_per_type() -> None:
    assert MessageType.EXPRESS.priority == 10
    assert MessageType.NORMAL.priority == 0


# --- SmsStatus.parse -----------------------------------------------------------------


@pytest.mark.parametrize("status", list(SmsStatus))
def test_status_parse_accepts_lowercase(status: SmsStatus) -> None:
    assert SmsStatus.parse(status.value.lower()) is status
    assert SmsStatus.parse(status.value) is status


def test_status_parse_refuses_unknown_naming_the_allowed_values() -> None:
    with pytest.raises(InvalidRequest) as err:
        SmsStatus.parse("read")
    assert err.value.field == "status"
    for s in ("pending", "sending", "done", "failed", "delivered", "undelivered", "expired"):
        assert s in err.value.reason


# --- normalize_recipients ---------------------------------------------------------------


@pytest.mark.parametrize(
    "number", ["09128582812", "091285284834", "+989121234567", "1234567", "123456789012345"]
)
def test_valid_numbers(number: str) -> None:
    assert normalize_recipients([number]) == [number]


@pytest.mark.parametrize(
    "number", ["abc", "123", "", "+", "123456", "1234567890123456", "0912-858-2812", "++1234567",
               "0912858281x", "۰۹۱۲۸۵۸۲۸۱۲"],
)
def test_invalid_numbers(number: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        normalize_recipients([number])
    assert err.value.field == "recipients"


def test_duplicates_are_merged_keeping_first_order() -> None:
    got = normalize_recipients(
        ["09128582812", "+989121234567", "09128582812", "091285284834", "+989121234567",
         "091285284834"]
    )
    assert got == ["09128582812", "+989121234567", "091285284834"]


@pytest.mark.parametrize(
    "padded", [" 09121234567", "09121234567 ", "09121234567\n", "0912 1234567"])
def test_a_number_is_exactly_digits_with_nothing_around_them(padded: str) -> None:
    # The document's pattern says so, and a client reads it: what it calls
    # invalid is refused, not quietly repaired.
    with pytest.raises(InvalidRequest):
        normalize_recipients([padded])


def test_local_and_international_forms_are_not_merged() -> None:
    assert normalize_recipients(["09121234567", "+989121234567"]) == [
        "09121234567", "+989121234567",
    ]


def test_all_invalid_numbers_are_named_in_one_error() -> None:
    with pytest.raises(InvalidRequest) as err:
        normalize_recipients(["abc", "09128582812", "123", "x1"])
    assert err.value.field == "recipients"
    for bad in ("'abc'", "'123'", "'x1'"):
        assert bad in err.value.reason
    assert "09128582812" not in err.value.reason


def test_many_invalid_numbers_are_summarised() -> None:
    with pytest.raises(InvalidRequest) as err:
        normalize_recipients([f"bad{i}" for i in range(25)])
    assert "'bad19'" in err.value.reason
    assert "'bad20'" not in err.value.reason
    assert "and 5 more" in err.value.reason


def test_empty_list_is_refused() -> None:
    with pytest.raises(InvalidRequest) as err:
        normalize_recipients([])
    assert err.value.field == "recipients"


def test_at_most_a_thousand_distinct_numbers() -> None:
    numbers = [f"+98912{i:07d}" for i in range(MAX_RECIPIENTS + 1)]
    assert len(normalize_recipients(numbers[:MAX_RECIPIENTS])) == MAX_RECIPIENTS
    # duplicates do not count against the limit
    assert len(normalize_recipients(numbers[:MAX_RECIPIENTS] * 2)) == MAX_RECIPIENTS
    with pytest.raises(InvalidRequest) as err:
        normalize_recipients(numbers)
    assert err.value.field == "recipients"
    assert "1000" in err.value.reason


phone = st.from_regex(r"\+?[0-9]{7,15}", fullmatch=True)


@settings(max_examples=100)
@given(st.lists(phone, min_size=1, max_size=30).flatmap(
    lambda ns: st.lists(st.sampled_from(ns), min_size=1, max_size=60)
))
def test_normalize_is_ordered_dedupe(numbers: list[str]) -> None:
    got = normalize_recipients(numbers)
    assert got == list(dict.fromkeys(numbers))
    assert normalize_recipients(got) == got
