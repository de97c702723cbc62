"""A method an API path does not serve answers 405 with ``Allow``, as the OpenAPI document implies.

Starlette answers 405 only when no other route matches the path. The web UI is mounted at ``/`` and
matches every path, so without this route a ``PUT /api/v1/workflows`` would get the UI's 404.

Example::

    install(app)          # in create_app, after the API routers, before the UI is mounted
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Mount, Router
from starlette.types import Receive, Scope, Send

from api.errors import error_body


class UndeclaredMethod(BaseRoute):
    """Matches a request whose path another route serves, with a method none of them serves."""

    METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")

    def __init__(self, router: Router) -> None:
        self.router = router  # read per request: routes included after this one (the editor's) count too

    def _match(self, scope: Scope) -> Match:
        """FULL when some route serves this path and method, PARTIAL when only the path, else NONE."""
        found = Match.NONE
        for route in self.router.routes:
            if route is self or isinstance(route, Mount):  # a mount at "/" would claim every path
                continue
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return Match.FULL
            if match is Match.PARTIAL:
                found = Match.PARTIAL
        return found

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and self._match(scope) is Match.PARTIAL:
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed = ", ".join(m for m in self.METHODS if self._match({**scope, "method": m}) is Match.FULL)
        body = error_body(f"{scope['path']} does not answer {scope['method']}; it answers {allowed}.", "MethodNotAllowed")
        await JSONResponse(body, status_code=405, headers={"Allow": allowed})(scope, receive, send)


def install(app: FastAPI) -> None:
    """Answer 405 for undeclared methods on API paths; call before anything is mounted at ``/``."""
    app.router.routes.append(UndeclaredMethod(app.router))
