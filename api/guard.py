"""Refuses what another web page could make a visitor's browser send to Stackyard.

Four checks, before login and before any route or Gradio page runs:

- **Host** (DNS rebinding): a request, HTTP or websocket, must name a host this server answers:
  localhost, 127.0.0.1 or [::1] (any port), the address the connection came in on (so Kubernetes probes
  that send ``Host: <pod ip>:<port>`` pass), or one of ``STACKYARD_ALLOWED_HOSTS`` (``*`` for any). 400.
- **Origin** (cross-site request forgery): POST, PUT, PATCH, DELETE and websockets from a browser must come
  from Stackyard's own origin (scheme://Host of the request) or one of ``STACKYARD_ALLOWED_ORIGINS``.
  ``Origin: null`` is refused; without an Origin, ``Sec-Fetch-Site: cross-site`` or ``same-site`` is
  refused. Scripts (curl, SDKs) send neither header and pass. 403.
- **Cross-site reads**: a foreign origin's GET gets its answer without CORS headers (Gradio would echo the
  origin), so the browser keeps it from the page.
- **Content type**: a body sent to the JSON API (``/api/``, ``/v1/``) must not have a type an HTML form or a
  no-cors ``fetch`` can send without a CORS preflight (text/plain, form-urlencoded, multipart, none), except
  multipart on ``POST /api/v1/jobs`` (CSV/JSONL uploads from scripts). 415.

Pure ASGI: Gradio streams over SSE and websockets, which ``BaseHTTPMiddleware`` would buffer.

Example::

    install(app)          # in create_app, after auth.install so it runs before the login check
"""

from __future__ import annotations

import re

from fastapi.responses import JSONResponse
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from stackyard.settings import Settings, get_settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SIMPLE_TYPES = frozenset({"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
JSON_API_PREFIXES = ("/api/", "/v1/")
MULTIPART_ROUTES = frozenset({("POST", "/api/v1/jobs")})
DEFAULT_PORTS = {"http": 80, "https": 443}

_HOST = r"(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(\d{1,5}))?"
_HOST_RE = re.compile(_HOST)
_ORIGIN_RE = re.compile(rf"(https?)://{_HOST}/?")

Origin = tuple[str, str, int]  # scheme, host name, port


def split_host(value: str) -> tuple[str, int | None] | None:
    """``'[::1]:8000'`` → ``('::1', 8000)``, ``'Example.com'`` → ``('example.com', None)``; None if malformed."""
    match = _HOST_RE.fullmatch(value.strip().lower())
    if not match:
        return None
    return match[1].strip("[]"), int(match[2]) if match[2] else None


def parse_origin(value: str) -> Origin | None:
    """``'http://localhost:8000'`` → ``('http', 'localhost', 8000)``; None for ``'null'`` or anything malformed."""
    match = _ORIGIN_RE.fullmatch(value.strip().lower())
    if not match:
        return None
    scheme, name, port = match[1], match[2].strip("[]"), match[3]
    return scheme, name, int(port) if port else DEFAULT_PORTS[scheme]


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length", "")
    return "transfer-encoding" in headers or (length.isdigit() and int(length) > 0)


def _without_cors(send: Send) -> Send:
    async def strip(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [(k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-")]
        await send(message)

    return strip


class CrossSiteGuard:
    """Pure ASGI middleware applying the three checks of this module."""

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str], any_host: bool, origins: frozenset[Origin]) -> None:
        self.app, self.hosts, self.any_host, self.origins = app, LOOPBACK_HOSTS | hosts, any_host, origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self.refusal(scope, headers)
        if refusal is None and scope["type"] == "http" and "origin" in headers and self.foreign_origin(scope, headers):
            # A read from another site: Gradio answers it with CORS headers echoing that origin (on hosts other
            # than localhost), which would let the page read the answer. Without them the browser hides it.
            await self.app(scope, receive, _without_cors(send))
        elif refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
        else:
            status, message, kind = refusal
            await JSONResponse(error_body(message, kind), status_code=status)(scope, receive, send)

    def refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, str] | None:
        """``(status, message, error type)`` when the request is refused, else None."""
        host = headers.get("host")
        if host is not None and not self.host_served(scope, host):
            return 400, (f"This server does not answer to the host name in 'Host: {host}'. If Stackyard is reached "
                         "by that name, add it to STACKYARD_ALLOWED_HOSTS."), "HostNotAllowed"
        method = scope.get("method", "WEBSOCKET")
        if method in SAFE_METHODS:
            return None
        if (refused := self.foreign_origin(scope, headers)) is not None:
            return 403, (f"Refused {method} {scope['path']} from {refused}: only Stackyard's own pages may change "
                         "anything here. To let another web site do this, add its origin to "
                         "STACKYARD_ALLOWED_ORIGINS."), "CrossSiteRequest"
        if scope["type"] == "http" and scope["path"].startswith(JSON_API_PREFIXES) and _has_body(headers):
            media = _media_type(headers)
            multipart_allowed = media == "multipart/form-data" and (method, scope["path"]) in MULTIPART_ROUTES
            if media in SIMPLE_TYPES and not multipart_allowed:
                return 415, (f"Send this body with the Content-Type it holds: application/json (application/yaml "
                             "for workflow imports and validation, application/octet-stream for file uploads, "
                             f"multipart/form-data only for POST /api/v1/jobs), not '{media or 'none'}', which any "
                             "web page can send."), "UnsupportedMediaType"
        return None

    def host_served(self, scope: Scope, host: str) -> bool:
        found = split_host(host)
        if found is None:
            return False
        server = scope.get("server")
        return self.any_host or found[0] in self.hosts or (server is not None and found[0] == str(server[0]).lower())

    def foreign_origin(self, scope: Scope, headers: Headers) -> str | None:
        """How to name the request's origin when it is neither Stackyard's own nor allowed, else None."""
        value = headers.get("origin")
        if value is None:
            fetch_site = headers.get("sec-fetch-site", "").lower()
            return f"another site (Sec-Fetch-Site: {fetch_site})" if fetch_site in ("cross-site", "same-site") else None
        origin = parse_origin(value)
        if origin is not None and (origin in self.origins or origin in self.own_origins(scope, headers)):
            return None
        return f"the web origin '{value}'"

    @staticmethod
    def own_origins(scope: Scope, headers: Headers) -> set[Origin]:
        found = split_host(headers.get("host", ""))
        if found is None:
            return set()
        name, port = found
        own = {("https", name, port or 443)}
        if scope.get("scheme") in ("http", "ws"):
            # Behind a proxy that terminates TLS this process sees http while the page's origin is https; that
            # origin is served by the same Host, so it is still our own. The reverse (an http page sending to
            # an https server) is not accepted.
            own.add(("http", name, port or 80))
        return own


def install(app: Starlette, settings: Settings | None = None) -> None:
    """Refuse cross-site and wrong-host requests; call after ``auth.install`` so it wraps the login check."""
    settings = settings or get_settings()
    hosts: set[str] = set()
    for entry in settings.allowed_hosts:
        if entry == "*":
            continue
        if (found := split_host(entry)) is None:
            raise ValueError(f"STACKYARD_ALLOWED_HOSTS: {entry!r} is not a host name; write each as a name or "
                             "address, e.g. stackyard.example.com, or * for any")
        hosts.add(found[0])
    origins: set[Origin] = set()
    for entry in settings.allowed_origins:
        if (origin := parse_origin(entry)) is None:
            raise ValueError(f"STACKYARD_ALLOWED_ORIGINS: {entry!r} is not a web origin; write each as "
                             "scheme://host[:port], e.g. https://intranet.example")
        origins.add(origin)
    app.add_middleware(CrossSiteGuard, hosts=frozenset(hosts), any_host="*" in settings.allowed_hosts,
                       origins=frozenset(origins))
