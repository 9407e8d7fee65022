"""OPTIONS answers that name every method of their path.

Litestar 2's own OPTIONS handler is made with the first handler registered at
a path and names only the methods known then (litestar#4169, fixed in 3): a
path with GET and POST would answer `Allow: OPTIONS, POST`. This middleware
runs after routing (Litestar applies app middleware per route) and writes the
Allow header from the app's complete map of the path's methods.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class AllowEveryMethod:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        routes = scope["litestar_app"].route_handler_method_map
        methods = {str(method) for path in scope["route_handler"].paths
                   for method in routes.get(path, {}) if method in HTTP_METHODS}
        allow = ", ".join(sorted(methods | {"OPTIONS"})).encode()

        async def with_allow(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message["headers"] = [*headers, (b"allow", allow)]
            await send(message)

        await self.app(scope, receive, with_allow)
