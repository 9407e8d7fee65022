"""Which field of a body a msgspec ValidationError is about, found by decoding again.

msgspec reports where an error is only inside its message ("<reason> - at
`$.field`") and exposes no path. So on the error path only (a valid body is
decoded once, as before), the body is decoded again one field at a time: the
first field whose own decoding fails is the one at fault, and its value
decoded alone gives msgspec's reason with no path in it. A list is looked
into once more, so an item is named as `recipients[3]`.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

BODY = "body"


@dataclass(frozen=True, slots=True)
class InvalidField:
    """`path` (a field, `field[i]`, or `body`) and what is wrong with it."""

    path: str
    reason: str


def invalid_field(body: bytes, model: type[msgspec.Struct], error: msgspec.ValidationError,
                  ) -> InvalidField:
    """The field of `body` (which failed to decode into `model` with `error`) at fault."""
    try:
        msgspec.json.decode(body, type=_shape(model))
    except msgspec.ValidationError as not_an_object:
        return InvalidField(BODY, str(not_an_object))
    except RecursionError:  # an object, one of whose fields is too deep to skip
        pass
    fields = msgspec.structs.fields(model)
    for field in fields:  # a wrong value is found before a missing one, as msgspec does
        if (found := _wrong_value(body, field)) is not None:
            return found
    for field in fields:
        if field.required and _missing(body, field):
            return InvalidField(field.encode_name, "is required")
    return InvalidField(BODY, str(error))  # about the whole body, not one field


def _wrong_value(body: bytes, field: msgspec.structs.FieldInfo) -> InvalidField | None:
    try:
        msgspec.json.decode(body, type=_probe(field.encode_name, field.type))
    except msgspec.ValidationError as wrong:
        failed = wrong
    except RecursionError:  # another field nested too deeply to skip: not this one
        return None
    else:
        return None
    name = field.encode_name
    try:
        raw = _raw_value(body, field)
    except RecursionError:
        # The value itself is nested too deeply to copy out, yet its type refused
        # it at its first bracket: the probe's reason, less the path msgspec added.
        return InvalidField(name, str(failed).removesuffix(f" - at `$.{name}`"))
    assert isinstance(raw, msgspec.Raw)
    return _locate(name, raw, field.type)


def _locate(path: str, raw: msgspec.Raw, annotation: Any) -> InvalidField:
    try:
        msgspec.json.decode(raw, type=annotation)
    except msgspec.ValidationError as wrong:
        reason = str(wrong)
    else:  # cannot happen: the probe refused this value
        return InvalidField(path, "is invalid")
    item = _item_type(annotation)
    if item is not None:
        try:
            items = msgspec.json.decode(raw, type=list[msgspec.Raw])
        except msgspec.ValidationError:
            return InvalidField(path, reason)  # not a list at all
        for index, value in enumerate(items):
            try:
                msgspec.json.decode(value, type=item)
            except msgspec.ValidationError:
                return _locate(f"{path}[{index}]", value, item)
    return InvalidField(path, reason)  # the value as a whole (its length, its type)


def _item_type(annotation: Any) -> Any | None:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        args = typing.get_args(annotation)
        return args[0] if args else None
    return None


def _missing(body: bytes, field: msgspec.structs.FieldInfo) -> bool:
    try:
        return _raw_value(body, field) is msgspec.UNSET
    except RecursionError:  # another field too deep to skip: this one cannot be told
        return False


def _raw_value(body: bytes, field: msgspec.structs.FieldInfo) -> msgspec.Raw | Any:
    probe = msgspec.json.decode(body, type=_probe(field.encode_name, msgspec.Raw))
    return getattr(probe, "value")  # noqa: B009


@functools.cache
def _shape(model: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """A struct of no fields: decoding into it checks only that the body is an object."""
    return msgspec.defstruct(f"{model.__name__}Shape", [])


@functools.cache
def _probe(name: str, annotation: Any) -> type[msgspec.Struct]:
    """A struct of one optional field `name`: every other field is skipped unread."""
    return msgspec.defstruct(
        "Probe", [("value", annotation, msgspec.UNSET)], rename={"value": name}
    )
