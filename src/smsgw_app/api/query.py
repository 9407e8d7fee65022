"""Query parameters: integers written as integers, and the bounds the document states.

An integer parameter is an integer as JSON Schema (and so the document) reads
one: `7`, or a whole number spelled as a JSON number, `7.0` or `1e3`. Litestar
converts such a spelling through a float, so it is taken only where a float is
exact (up to 2**53 in size); anything else is a 400 naming the parameter. (A
guard, because it runs before the handler's parameters are converted.)
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from litestar.connection import ASGIConnection
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import KwargDefinition, ParameterKwarg

from smsgw_app.api.body import whole_value
from smsgw_core.pagination import MAX_LIMIT, MAX_POSITION

INTEGER_PARAMETERS = ("user_id", "limit", "cursor")
_INTEGER = re.compile(r"-?[0-9]+")
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_EXACT_AS_FLOAT = 2**53


def integers_in_query(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    for name in INTEGER_PARAMETERS:
        for value in connection.query_params.getall(name, []):
            if not value and name == "user_id":
                # The Go service's words for `user_id=`: the parameter is there, empty.
                raise ValidationException(f"{name}: is required")
            if not (_INTEGER.fullmatch(value) or _whole_and_exact(value)):
                raise ValidationException(f"{name}: must be an integer, got {value[:40]!r}")


def _whole_and_exact(value: str) -> bool:
    if not _JSON_NUMBER.fullmatch(value):
        return False
    whole = whole_value(Decimal(value), digits=16)
    return whole is not None and abs(whole) <= _EXACT_AS_FLOAT


def integer(low: int, high: int, description: str) -> KwargDefinition:
    """Bounds checked by Litestar and written into the document as integers (Litestar
    writes floats, and float(2**63 - 1) is 2**63, a number the server refuses)."""
    return ParameterKwarg(ge=low, le=high, description=description,
                          schema_extra={"minimum": low, "maximum": high})


# The seed routes' page when none is asked for: a Go client does not paginate
# (the Go service answered every row), so it gets the most a page holds.
SEED_PAGE = MAX_LIMIT

UserId = Annotated[int, integer(1, MAX_POSITION, f"the customer, 1-{MAX_POSITION}")]


def page_size() -> KwargDefinition:
    return integer(1, MAX_LIMIT, f"rows per page, 1-{MAX_LIMIT}")


# A page's next_cursor, passed back for the page after it (a row position; see
# smsgw_core.pagination). The core reads it as the string it issued.
Cursor = Annotated[int | None, integer(
    1, MAX_POSITION, "the next_cursor of the page before, for the page after it")]


def cursor_text(cursor: int | None) -> str | None:
    return None if cursor is None else str(cursor)
