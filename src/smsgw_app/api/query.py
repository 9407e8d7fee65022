"""Query parameters: integers written as integers, and the bounds the document states.

Litestar converts query values leniently, so `user_id=7.0` and `user_id=1e3`
would be read as 7 and 1000; ids and page sizes are typed as strictly in a
query as in a body, so anything else is a 400 naming the parameter. (A guard,
because it runs before the handler's parameters are converted.)
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar.connection import ASGIConnection
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import KwargDefinition, ParameterKwarg

from smsgw_core.pagination import MAX_LIMIT, MAX_POSITION

INTEGER_PARAMETERS = ("user_id", "limit")
_INTEGER = re.compile(r"-?[0-9]+")


def integers_in_query(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    for name in INTEGER_PARAMETERS:
        for value in connection.query_params.getall(name, []):
            if not value:
                # The Go service's words for `user_id=`: the parameter is there, empty.
                raise ValidationException(f"{name}: is required")
            if not _INTEGER.fullmatch(value):
                raise ValidationException(f"{name}: must be an integer, got {value[:40]!r}")


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
