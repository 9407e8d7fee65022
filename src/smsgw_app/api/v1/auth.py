"""Who calls: a guard per kind of route, proving the Bearer key before the handler.

A guard, not a dependency: Litestar resolves two or more dependencies in a task
group per request, a cost the send path does not pay for this. The guard
leaves the proven key in the request's state, where `caller()` reads it.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from smsgw_core.errors import Forbidden
from smsgw_core.keys import ApiKey
from smsgw_core.services.authenticate import Authenticator

AnyRequest = Request[Any, Any, Any]
AUTHENTICATOR = "authenticator"  # the app state's name for it
_KEY = "api_key"


async def _prove(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    authenticator: Authenticator = connection.app.state[AUTHENTICATOR]
    key = await authenticator.authenticate(connection.headers.get("authorization"))
    connection.state[_KEY] = key
    return key


async def customer_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler,
                       ) -> None:
    if (await _prove(connection)).is_admin:
        raise Forbidden("this route acts for a customer: use that customer's key")


async def admin_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler,
                    ) -> None:
    if not (await _prove(connection)).is_admin:
        raise Forbidden("this route takes an admin key")


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    """The key the route's guard proved."""
    key: ApiKey = connection.state[_KEY]
    return key


def customer_of(connection: ASGIConnection[Any, Any, Any, Any]) -> int:
    customer = caller(connection).customer_id
    assert customer is not None, "the customer_key guard lets no admin key through"
    return customer
