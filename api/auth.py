"""Admin login for the editor and the management API, on only when ``STACKYARD_ADMIN_PASSWORD`` is set.

With no password (the embedded default, meant for localhost) nothing changes. With one, every path
needs a session cookie except the probes, the login page itself and what published apps serve with
their own credentials: the OpenAI-compatible API and ``/api/v1/apps/*`` (API keys) and the public chat
pages. Scripts may send ``Authorization: Basic`` (user ``admin``) instead of the cookie.

The cookie is ``<session id>.<HMAC>`` keyed by a PBKDF2 key derived from the password. The id names a
server-side row (:mod:`api.admin_sessions`): ``/logout`` deletes it, so the cookie stops working
at once, and changing the password logs every session out. Browsers asking for a page are redirected to
``/login``; API clients get 401 in the usual error shape. Failed logins, by form or by HTTP Basic, are
throttled per client and overall (:func:`apps.limits.admit_login_attempt`): past the limit every attempt
gets 429 with ``Retry-After`` until the window ends.

Example::

    install(app)          # in create_app, before the editor is mounted at "/"
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_body
from apps.limits import LoginThrottled, admit_login_attempt, login_succeeded
from stackyard.settings import Settings, get_settings

COOKIE = "stackyard_session"
SESSION_SECONDS = 7 * 24 * 3600
ADMIN_USER = "admin"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/login", "/logout", "/favicon.ico"})
PUBLIC_PREFIXES = ("/v1/", "/api/v1/apps/", "/chat/", "/chat-app/", "/chat-app", "/widget.js", "/widget/",
                   "/widget-static/")
FAILED_LOGIN_DELAY = 0.5
MAX_LOGIN_BODY = 8192


def derive_key(password: str) -> bytes:
    # Slow on purpose: a captured cookie must not make the password cheap to brute-force offline.
    return hashlib.pbkdf2_hmac("sha256", password.encode(), b"stackyard-session-v1", 200_000)


def sign(key: bytes, session_id: str) -> str:
    mac = hmac.new(key, f"{ADMIN_USER}.{session_id}".encode(), hashlib.sha256).digest()
    return f"{session_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def signed_session_id(key: bytes, token: str | None) -> str | None:
    """The session id a cookie carries when its signature is right (no database read), else None."""
    if not token or "." not in token:
        return None
    session_id = token.rpartition(".")[0]
    return session_id if hmac.compare_digest(sign(key, session_id).encode(), token.encode()) else None


def _session_alive(session_id: str) -> bool:
    from api.admin_sessions import session_alive
    from store.db import autocommit_scope

    with autocommit_scope() as session:
        return session_alive(session=session, session_id=session_id)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


async def _throttled(client: str) -> Response | None:
    """Count a login attempt; a 429 when this client (or everyone) has failed too often, else None."""
    try:
        await run_in_threadpool(admit_login_attempt, client)
    except LoginThrottled as exc:
        return JSONResponse(error_body(str(exc), "TooManyRequests"), status_code=429,
                            headers={"Retry-After": str(exc.retry_after)})
    return None


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _basic_ok(password: str, header: str | None) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        user, _, given = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), ADMIN_USER.encode()) & hmac.compare_digest(given.encode(), password.encode())


def _cookie(headers: Headers) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


class AdminLogin:
    """Pure ASGI middleware (Gradio streams over SSE and websockets, which BaseHTTPMiddleware would buffer)."""

    def __init__(self, app: ASGIApp, *, password: str, key: bytes):
        self.app, self.password, self.key = app, password, key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        session_id = signed_session_id(self.key, _cookie(headers))
        if session_id is not None and await run_in_threadpool(_session_alive, session_id):
            await self.app(scope, receive, send)
            return
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic ") and scope["type"] == "http":
            client = _client(scope)
            refusal = await _throttled(client)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            if _basic_ok(self.password, basic):
                await run_in_threadpool(login_succeeded, client)
                await self.app(scope, receive, send)
                return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
            return
        path = scope["path"]
        if scope["method"] == "GET" and "text/html" in headers.get("accept", "") and not path.startswith("/api/"):
            query = scope.get("query_string", b"").decode()
            target = path + (f"?{query}" if query else "")
            response: Response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        else:
            response = JSONResponse(error_body("Log in first: open /login in a browser, or send HTTP Basic "
                                               f"credentials (user '{ADMIN_USER}', the admin password).", "LoginRequired"),
                                    status_code=401)
        await response(scope, receive, send)


def _open_session() -> str:
    from api.admin_sessions import open_session
    from store.db import session_scope

    with session_scope() as session:
        return open_session(session=session, lifetime_seconds=SESSION_SECONDS)


def _close_session(session_id: str) -> None:
    from api.admin_sessions import close_session
    from store.db import session_scope

    with session_scope() as session:
        close_session(session=session, session_id=session_id)


async def _login_form(request: Request) -> bytes | None:
    """The login form's bytes, or None when it is over ``MAX_LOGIN_BODY``: refused by its Content-Length before a
    byte is read, else as soon as the streamed body passes the limit (``/login`` is public: anyone may post)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_LOGIN_BODY:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            return None
    return bytes(body)


def _safe_next(target: str | None) -> str:
    # Only same-site paths: "/x" yes, "//evil.example" and "https://..." no.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Stackyard · Log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{margin:0;min-height:100vh;display:grid;place-items:center;background:#f4f5f7;
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2430}}
form{{background:#fff;border:1px solid #e2e5ea;border-radius:12px;padding:32px 32px 28px;width:320px;
box-shadow:0 8px 24px rgba(20,24,40,.06)}}
h1{{font-size:18px;margin:0 0 4px}} p{{margin:0 0 20px;color:#667085}}
label{{display:block;font-weight:600;margin-bottom:6px}}
input[type=password]{{box-sizing:border-box;width:100%;padding:9px 11px;border:1px solid #cfd4dc;border-radius:8px;font:inherit}}
input[type=password]:focus{{outline:2px solid #4f46e5;border-color:#4f46e5}}
button{{margin-top:16px;width:100%;padding:10px;border:0;border-radius:8px;background:#4f46e5;color:#fff;font:inherit;
font-weight:600;cursor:pointer}} .err{{color:#b42318;margin:12px 0 0}}
.logo{{display:inline-block;width:26px;height:26px;border-radius:7px;background:#4f46e5;margin-bottom:12px}}
</style></head><body><form method="post" action="/login"><span class="logo"></span>
<h1>Stackyard</h1><p>Enter the admin password to open the editor.</p>
<label for="password">Password</label><input id="password" name="password" type="password" autofocus
autocomplete="current-password" required><input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>{error}</form></body></html>"""


def login_page(next_path: str, error: str = "") -> str:
    return _PAGE.format(next=html.escape(_safe_next(next_path)), error=f'<p class="err">{html.escape(error)}</p>' if error else "")


def install(app: FastAPI, settings: Settings | None = None) -> None:
    """Require login when an admin password is set; a no-op otherwise."""
    settings = settings or get_settings()
    password = settings.admin_password
    if not password:
        return
    key = derive_key(password)

    @app.get("/login", include_in_schema=False)
    def login_form(next: str = "/") -> HTMLResponse:  # noqa: A002 - the query parameter's name
        return HTMLResponse(login_page(next))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        body = await _login_form(request)
        if body is None:
            return HTMLResponse(login_page("/", f"The login form is over {MAX_LOGIN_BODY} bytes; the limit is "
                                                f"{MAX_LOGIN_BODY} bytes. Send only the password and next fields."),
                                status_code=413)
        form = parse_qs(body.decode(errors="replace"))
        given, target = (form.get("password") or [""])[0], _safe_next((form.get("next") or ["/"])[0])
        client = _client(request.scope)
        refusal = await _throttled(client)
        if refusal is not None:
            return refusal
        if not hmac.compare_digest(given.encode(), password.encode()):
            await asyncio.sleep(FAILED_LOGIN_DELAY)  # slows one client's serial guessing further
            return HTMLResponse(login_page(target, "Wrong password."), status_code=401)
        await run_in_threadpool(login_succeeded, client)
        session_id = await run_in_threadpool(_open_session)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, sign(key, session_id), max_age=SESSION_SECONDS, httponly=True,
                            samesite="lax", secure=request.url.scheme == "https", path="/")
        return response

    @app.api_route("/logout", methods=["GET", "POST"], include_in_schema=False)
    async def logout(request: Request) -> Response:
        if request.method == "GET" and request.headers.get("sec-fetch-site", "none") not in ("same-origin", "none"):
            return RedirectResponse("/", status_code=303)  # a link or image on another site logs nobody out
        session_id = signed_session_id(key, request.cookies.get(COOKIE))
        if session_id is not None:
            await run_in_threadpool(_close_session, session_id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    app.add_middleware(AdminLogin, password=password, key=key)
