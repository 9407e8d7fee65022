"""Integers in a query string are written as integers: optional minus, then digits.

Litestar converts query values leniently, so `user_id=7.0` and `user_id=1e3`
would be read as 7 and 1000; ids and page sizes are typed as strictly in a
query as in a body, so anything else is a 422 naming the parameter. (A guard,
because it runs before the handler's parameters are converted.)
"""

from __future__ import annotations

import re
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler

INTEGER_PARAMETERS = ("user_id", "limit")
_INTEGER = re.compile(r"-?[0-9]+")


def integers_in_query(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    for name in INTEGER_PARAMETERS:
        for value in connection.query_params.getall(name, []):
            if not _INTEGER.fullmatch(value):
                raise ValidationException(f"{name}: must be an integer, got {value[:40]!r}")
