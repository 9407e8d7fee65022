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

from smsgw_core.errors import Forbidden, Unauthenticated
from smsgw_core.keys import ApiKey, bearer_token_matches
from smsgw_core.services.authenticate import Authenticator

AnyRequest = Request[Any, Any, Any]
AUTHENTICATOR = "authenticator"  # the app state's names for it,
LEGACY_AUTH = "legacy_auth"  # and for SMSGW_LEGACY_AUTH
METRICS_TOKEN = "metrics_token"  # and for SMSGW_METRICS_TOKEN
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


def _keyed(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return bool(connection.app.state[LEGACY_AUTH] == "key")


async def seed_customer_key(connection: ASGIConnection[Any, Any, Any, Any],
                            handler: BaseRouteHandler) -> None:
    """A seed route acting for a customer: with SMSGW_LEGACY_AUTH=key, that
    customer's key (the handler checks the id it names: see `acting_for`)."""
    if _keyed(connection):
        await customer_key(connection, handler)


async def seed_admin_key(connection: ASGIConnection[Any, Any, Any, Any],
                         handler: BaseRouteHandler) -> None:
    """POST /balance/add: with SMSGW_LEGACY_AUTH=key, an admin key."""
    if _keyed(connection):
        await admin_key(connection, handler)


async def metrics_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler,
                        ) -> None:
    """/metrics: with SMSGW_METRICS_TOKEN set, that Bearer token (not an API key)."""
    token: str = connection.app.state[METRICS_TOKEN]
    if token and not bearer_token_matches(connection.headers.get("authorization"), token):
        raise Unauthenticated("no or wrong metrics token")


def acting_for(connection: ASGIConnection[Any, Any, Any, Any], customer_id: int) -> None:
    """With keys on the seed routes, the customer a request names must be the key's."""
    key: ApiKey | None = connection.state.get(_KEY)
    if key is not None and key.customer_id != customer_id:
        raise Forbidden(f"this key acts for customer {key.customer_id} only")


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    """The key the route's guard proved."""
    key: ApiKey = connection.state[_KEY]
    return key


def customer_of(connection: ASGIConnection[Any, Any, Any, Any]) -> int:
    customer = caller(connection).customer_id
    assert customer is not None, "the customer_key guard lets no admin key through"
    return customer
