"""A body's validation error names its field from msgspec's own message: the path
msgspec appends, or the required field it names as missing."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from smsgw_app.api.body_errors import InvalidField, invalid_field
from smsgw_app.api.schemas import SendSmsRequest, TopUpRequest

SEND = {"customer_id": 7, "text": "hi", "recipients": ["09120000001"]}


def located(body: bytes, model: type[msgspec.Struct] = SendSmsRequest) -> InvalidField:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.json.decode(body, type=model)
    return invalid_field(refused.value)


@pytest.mark.parametrize(("change", "expected"), [
    ({"customer_id": "7"}, InvalidField("customer_id", "Expected `int`, got `str`")),
    ({"customer_id": 0}, InvalidField("customer_id", "Expected `int` >= 1")),
    ({"recipients": ["09120000001", 5]},
     InvalidField("recipients[1]", "Expected `str`, got `int`")),
    ({"recipients": []}, InvalidField("recipients", "Expected `array` of length >= 1")),
    ({"type": "x"}, InvalidField("type", "Invalid enum value 'x'")),
    ({"customer_id": None, "text": 5}, InvalidField("customer_id", "Expected `int`, got `null`")),
])
def test_the_first_wrong_field_is_named(change: dict[str, Any], expected: InvalidField) -> None:
    assert located(json.dumps({**SEND, **change}).encode()) == expected


def test_the_first_wrong_value_in_the_body_is_the_one_named() -> None:
    assert located(b'{"text": 5, "customer_id": "7"}') == InvalidField(
        "text", "Expected `str`, got `int`")


def test_a_missing_field_is_required_and_a_wrong_one_comes_first() -> None:
    assert located(b'{"text": "hi", "recipients": ["09120000001"]}') == InvalidField(
        "customer_id", "is required")
    assert located(b"{}") == InvalidField("customer_id", "is required")
    assert located(b'{"text": 5}') == InvalidField("text", "Expected `str`, got `int`")


def test_a_body_that_is_not_an_object_is_the_body() -> None:
    assert located(b"null") == InvalidField("body", "Expected `object`, got `null`")


def test_a_value_quoting_a_path_does_not_move_the_field() -> None:
    sly = "x' - at `$.customer_id`"
    assert located(json.dumps({**SEND, "type": sly}).encode()) == InvalidField(
        "type", f"Invalid enum value {sly!r}")


class Inner(msgspec.Struct):
    number: int


class Outer(msgspec.Struct):
    inner: list[Inner]


def test_a_nested_field_is_named_by_its_whole_path() -> None:
    assert located(b'{"inner": [{"number": 1}, {}]}', Outer) == InvalidField(
        "inner[1].number", "is required")
    assert located(b'{"inner": [{"number": "1"}]}', Outer) == InvalidField(
        "inner[0].number", "Expected `int`, got `str`")


def test_a_field_too_deep_to_copy_is_still_named() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert located(b'{"description": ' + deep + b"}", TopUpRequest) == InvalidField(
        "description", "Expected `str`, got `array`")
