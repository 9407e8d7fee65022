"""What the OpenAPI document says beyond what Litestar derives from the handlers.

Every status a route can answer, with the body it really has ({"message"}),
and the Swagger UI served from a packaged copy of its assets: the gateway
often runs where operators connect, on networks that reach no CDN.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.router import Router
from litestar.static_files import create_static_files_router

from smsgw_app.api.schemas import ErrorResponse

# What every /v1 operation declares: a Bearer API key.
SCHEME_NAME = "BearerKey"
SECURITY: list[dict[str, list[str]]] = [{SCHEME_NAME: []}]
# What an operator's receipts route declares: the operator's receipt token.
OPERATOR_SCHEME_NAME = "OperatorReceiptToken"
OPERATOR_SECURITY: list[dict[str, list[str]]] = [{OPERATOR_SCHEME_NAME: []}]
_COMPONENTS = Components(security_schemes={
    SCHEME_NAME: SecurityScheme(
        type="http", scheme="bearer",
        description="An API key, from `smsgw keys create` or POST /v1/customers/{id}/keys",
    ),
    OPERATOR_SCHEME_NAME: SecurityScheme(
        type="http", scheme="bearer",
        description="An operator's receipt token: `?receipt_token=` on its URL in "
                    "SMSGW_OPERATORS (not an API key)",
    ),
})

DOCUMENT_PATH = "/swagger"
ASSETS_PATH = f"{DOCUMENT_PATH}/assets"


def _assets() -> Path:
    """swagger-ui-py's copy of swagger-ui-dist (5.x reads OpenAPI 3.1, which Litestar
    writes), found without importing the package (it imports jinja2 and YAML)."""
    spec = importlib.util.find_spec("swagger_ui")
    assert spec is not None and spec.submodule_search_locations, "swagger-ui-py is a dependency"
    return Path(next(iter(spec.submodule_search_locations))) / "static"


_WHY: dict[int, str] = {
    400: "Invalid request: malformed JSON, or a missing or invalid field or query "
         "parameter, named in the message",
    401: "No API key, or one that is malformed, unknown or revoked; on an operator's "
         "route, not its receipt token (with WWW-Authenticate: Bearer)",
    402: "The balance does not cover the cost, or the customer has never been topped up",
    403: "The key may not do this: a customer key on an admin route, or an admin key "
         "on a customer's",
    404: "No such thing for this key (another customer's is not found either)",
    409: "The Idempotency-Key was used before with another body",
    413: "The body is larger than the server takes",
    415: "The body is not declared as JSON (application/json or application/*+json)",
    429: "The customer is over its send limit (recipients per second): nothing was "
         "charged or written; retry after the Retry-After header's seconds",
    503: "Overloaded or the database is unavailable: nothing was written; retry "
         "after the Retry-After header's seconds",
}


# What every keyed route can answer: no valid key, or a key of the wrong kind.
AUTH_ERRORS = (401, 403)


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The error answers of a route, each {"message": "..."}."""
    return {status: ResponseSpec(ErrorResponse, description=_WHY[status],
                                 generate_examples=False) for status in statuses}


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="smsgw",
        version=version,
        description="Prepaid SMS gateway: charge, accept durably, deliver with failover.",
        path=DOCUMENT_PATH,
        components=_COMPONENTS,
        render_plugins=[
            SwaggerRenderPlugin(
                path=["/", "/index.html"],
                js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                css_url=f"{ASSETS_PATH}/swagger-ui.css",
                standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' href='{ASSETS_PATH}/favicon-32x32.png'>",
            ),
            # doc.json is where the Go service's swag serves it.
            JsonRenderPlugin(path=["/openapi.json", "/doc.json"]),
        ],
    )


def swagger_assets() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH, directories=[_assets()], name="swagger-assets",
        include_in_schema=False,
        # They change only with the package: a browser may keep them a day.
        cache_control=CacheControlHeader(max_age=86_400),
    )
