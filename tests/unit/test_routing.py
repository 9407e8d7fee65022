"""Routes by number prefix: the table, refusal at acceptance, and delivery only
through a recipient's own operators, in their order."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.core_world import U, World, accepted_delivery, fund, send, writes_nothing

from smsgw_app.config import ConfigError, Settings
from smsgw_core.errors import InvalidRequest
from smsgw_core.messages import SmsStatus
from smsgw_core.operators import ErrorClass
from smsgw_core.routing import DEFAULT, Route, Routes, RoutesError
from smsgw_core.services.deliver import Deliverer
from smsgw_core.services.send_sms import SmsSender
from smsgw_core.testing import always

TABLE = "0912,+98912=MCI,B;0912858=B;*=A,B"


def test_the_longest_matching_prefix_wins_and_the_default_takes_the_rest() -> None:
    routes = Routes.parse(TABLE)
    assert routes.operators_for("09121234567") == ("MCI", "B")
    assert routes.operators_for("+989121234567") == ("MCI", "B")
    assert routes.operators_for("09128582812") == ("B",)
    assert routes.operators_for("09351234567") == ("A", "B")
    assert routes.operators_for("989121234567") == ("A", "B")  # as written: no +
    assert Routes.parse("0912=MCI").operators_for("0935000") is None


@given(st.lists(st.from_regex(r"\+?[0-9]{1,4}", fullmatch=True), min_size=1, max_size=6,
                unique=True),
       st.from_regex(r"\+?[0-9]{7,15}", fullmatch=True), st.booleans())
def test_a_number_goes_to_its_longest_prefix_route(
    prefixes: list[str], number: str, default: bool,
) -> None:
    routes = Routes(tuple(Route((p,), (f"op{i}",)) for i, p in enumerate(prefixes))
                    + ((Route((DEFAULT,), ("fallback",)),) if default else ()))
    matching = [p for p in prefixes if number.startswith(p)]
    found = routes.operators_for(number)
    if matching:
        longest = max(matching, key=len)
        assert found == (f"op{prefixes.index(longest)}",)
    else:
        assert found == (("fallback",) if default else None)


@pytest.mark.parametrize(("table", "problem"), [
    ("", "no route"), ("0912", "not PREFIXES=OPERATORS"), ("=A", "names no prefix"),
    ("0912=", "names no operator"), ("09x=A", "1-15 digits"), ("0912=A;0912=B", "in two"),
    ("0912=A,A", "named twice"), ("+=A", "1-15 digits"),
])
def test_a_bad_table_says_which_part(table: str, problem: str) -> None:
    with pytest.raises(RoutesError, match=problem):
        Routes.parse(table)


def test_the_setting_names_only_configured_operators_in_one_line() -> None:
    settings = Settings.from_env({"SMSGW_OPERATORS": "A=sim://,B=sim://",
                                  "SMSGW_ROUTES": "0912=B;*=A,B"})
    assert settings.routing().operators_for("0912") == ("B",)
    assert Settings.from_env({}).routing().operators_for("0912") == ("A", "B")
    with pytest.raises(ConfigError, match=r"^SMSGW_ROUTES: MCI: not in SMSGW_OPERATORS$"):
        Settings.from_env({"SMSGW_OPERATORS": "A=sim://", "SMSGW_ROUTES": "0912=MCI;*=A"})
    with pytest.raises(ConfigError, match=r"^SMSGW_ROUTES: "):
        Settings.from_env({"SMSGW_ROUTES": "0912"})


@pytest.fixture
def routed() -> World:
    world = World()
    routes = Routes.parse("0912=B,A;*=A")
    world.sender = replace_sender(world.sender, routes)
    world.deliverer = Deliverer(world.db.uow, world.clock, [world.a, world.b], world.breaker,
                                world.validity, routes=routes)
    return world


def replace_sender(sender: SmsSender, routes: Routes) -> SmsSender:
    return replace(sender, routes=routes)


async def test_a_recipient_no_route_serves_is_refused_naming_it_and_nothing_is_written(
) -> None:
    world = World()
    world.sender = replace_sender(world.sender, Routes.parse("0912=A"))
    await fund(world, 100)
    with writes_nothing(world), pytest.raises(InvalidRequest) as refused:
        await send(world, ("09121234567", "09351234567"))
    assert refused.value.field == "recipients"
    assert "'09351234567'" in refused.value.reason and "0912123" not in refused.value.reason


async def test_each_recipient_goes_through_its_own_operators_in_their_order(
    routed: World,
) -> None:
    await fund(routed, 100)
    routed.b.behaviour = always(ErrorClass.TRANSIENT)  # 0912's first choice is down
    delivery = await accepted_delivery(routed, ("09121234567", "09351234567"))
    await routed.deliverer.deliver(delivery)
    by_recipient = {m.recipient: (m.status, m.provider) for m in routed.messages()}
    assert by_recipient == {"09121234567": (SmsStatus.DONE, "A"),  # failed over B -> A
                            "09351234567": (SmsStatus.DONE, "A")}
    assert routed.b.calls == 1  # only the 0912 number ever reached B
    assert sorted(s.recipient for s in routed.a.sent) == ["09121234567", "09351234567"]


async def test_a_number_the_routes_no_longer_serve_fails_and_is_refunded_at_once() -> None:
    world = World()
    await fund(world, 100)
    delivery = await accepted_delivery(world, ("09351234567",))  # accepted before the change
    world.deliverer = Deliverer(world.db.uow, world.clock, [world.a, world.b], world.breaker,
                                world.validity, routes=Routes.parse("0912=A"))
    await world.deliverer.deliver(delivery)
    [row] = world.messages()
    assert row.status is SmsStatus.FAILED
    assert (world.a.calls, world.b.calls) == (0, 0)
    assert world.balance(U) == 100
