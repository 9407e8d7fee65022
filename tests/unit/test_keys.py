"""API keys: issued once, stored as a hash, proven in constant time, revoked for good."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw_core.customers import Customer
from smsgw_core.errors import InvalidRequest
from smsgw_core.keys import PREFIX, hash_secret, issue, parse, proves
from smsgw_core.services.keys import Keys, NewKey
from smsgw_core.system import SystemTokens
from smsgw_core.testing import FakeClock, InMemoryDatabase

TOKENS = SystemTokens()


def test_an_issued_key_proves_its_record_and_the_record_holds_no_secret() -> None:
    clock = FakeClock()
    issued = issue(TOKENS, 7, "ci", clock.now())
    presented = parse(issued.key)
    assert presented is not None and presented.key_id == issued.record.key_id
    assert proves(issued.record, presented)
    assert issued.record.secret_hash == hash_secret(presented.secret)
    assert presented.secret not in repr(issued.record)
    assert issued.key.startswith(f"{PREFIX}_")


def test_another_secret_or_another_id_proves_nothing() -> None:
    one, two = (issue(TOKENS, 7, "", FakeClock().now()) for _ in range(2))
    mine, theirs = parse(one.key), parse(two.key)
    assert mine is not None and theirs is not None
    assert not proves(one.record, theirs)
    forged = type(mine)(mine.key_id, theirs.secret)
    assert not proves(one.record, forged)


@pytest.mark.parametrize("text", [
    "", "smsgw", "smsgw__", "Bearer x", "smsgw_0123456789abcdef_",
    "smsgw_0123456789ABCDEF_" + "a" * 43,  # ids are lowercase hex
    "smsgw_0123456789abcdef_" + "a" * 42,
    "smsgw_0123456789abcdef_" + "a" * 44,
    " smsgw_0123456789abcdef_" + "a" * 43,
    "smsgw_0123456789abcdef_" + "a" * 42 + "\n",
    "other_0123456789abcdef_" + "a" * 43,
])
def test_a_malformed_key_is_no_key(text: str) -> None:
    assert parse(text) is None


@given(st.text(max_size=120))
def test_parsing_never_fails_on_any_text(text: str) -> None:
    found = parse(text)
    assert found is None or text == f"{PREFIX}_{found.key_id}_{found.secret}"


async def test_a_customer_key_creates_its_customer_and_an_admin_key_has_none() -> None:
    db, clock = InMemoryDatabase(), FakeClock()
    keys = Keys(db.uow, clock, TOKENS)
    customer = await keys.create(NewKey(42, "shop"))
    admin = await keys.create(NewKey(None, "ops"))
    again = await keys.create(NewKey(42))
    assert db.state.customers == {42: Customer(42, "", clock.now())}
    assert (customer.record.customer_id, admin.record.is_admin) == (42, True)
    assert {k.key_id for k in await keys.listed(42)} == {
        customer.record.key_id, again.record.key_id}
    assert len(await keys.listed()) == 3


async def test_a_revoked_key_stays_revoked() -> None:
    db, clock = InMemoryDatabase(), FakeClock()
    keys = Keys(db.uow, clock, TOKENS)
    issued = await keys.create(NewKey(1))
    assert await keys.revoke(issued.record.key_id)
    assert not await keys.revoke(issued.record.key_id)
    assert not await keys.revoke("no-such-key")
    [listed] = await keys.listed(1)
    assert listed.revoked_at == clock.now()


@pytest.mark.parametrize(("customer", "name", "field"), [
    (0, "", "customer"), (2**63, "", "customer"), (1, "n" * 101, "name"),
])
def test_a_bad_key_request_names_the_field(customer: int, name: str, field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        NewKey(customer, name)
    assert refused.value.field == field
