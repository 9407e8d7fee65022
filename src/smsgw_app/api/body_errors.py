"""Which field of a body a msgspec ValidationError is about, read from its message.

msgspec exposes no path, but its message ends with one ("<reason> - at
`$.recipients[1]`"; nothing when the error is about the body as a whole), and
names a missing field in the reason ("Object missing required field `text`").
The answer names the field as the client wrote it, `recipients[1]`, or `body`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

BODY = "body"

# Greedy: a reason may quote the client's value (an enum's), so the path is the
# last "- at `$…`", the one msgspec appended.
_AT = re.compile(r"(?P<reason>.*) - at `\$(?P<path>[^`]*)`", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]*)`")


@dataclass(frozen=True, slots=True)
class InvalidField:
    """`path` (a field, `field[i]`, or `body`) and what is wrong with it."""

    path: str
    reason: str


def invalid_field(error: msgspec.ValidationError) -> InvalidField:
    """The field a body's `error` is about: the first wrong value in the body,
    or else the first required field missing."""
    reason, path = str(error), ""
    if at := _AT.fullmatch(reason):
        reason, path = at["reason"], at["path"]
    if missing := _MISSING.fullmatch(reason):
        reason, path = "is required", f"{path}.{missing['name']}"
    return InvalidField(path.removeprefix(".") or BODY, reason)
