"""Admin login (api.auth): off by default; with STACKYARD_ADMIN_PASSWORD the editor and management API need it,
the probes and what published apps serve with their own credentials do not."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import auth

PASSWORD = "correct horse battery"
LOCKOUT_SECONDS = 4


def make_client(data_dir: Path, monkeypatch: pytest.MonkeyPatch, password: str | None) -> TestClient:
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("STACKYARD_DATABASE_URL", f"sqlite:///{data_dir / 'stackyard.db'}")
    # Each test gets its own short login window, so failures in one test never lock out the next.
    monkeypatch.setenv("STACKYARD_LOGIN_LOCKOUT_SECONDS", str(LOCKOUT_SECONDS + uuid.uuid4().int % 1000 / 1e6))
    if password:
        monkeypatch.setenv("STACKYARD_ADMIN_PASSWORD", password)
    else:
        monkeypatch.delenv("STACKYARD_ADMIN_PASSWORD", raising=False)
    reset_settings_cache()
    from stackyard.web import create_app

    return TestClient(create_app(), follow_redirects=False)


@pytest.fixture
def guarded(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from store.db import _engine_for

    with make_client(data_dir, monkeypatch, PASSWORD) as client:
        yield client
    _engine_for.cache_clear()


def test_everything_is_open_without_a_password(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with make_client(data_dir, monkeypatch, None) as client:
        assert client.get("/api/v1/workflows").status_code == 200
        assert client.get("/", headers={"Accept": "text/html"}).status_code == 200
        assert 'name="password"' not in client.get("/login").text  # no login page at all


def test_api_and_editor_need_a_session(guarded: TestClient):
    response = guarded.get("/api/v1/workflows")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "LoginRequired"
    page = guarded.get("/?workflow=abc", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2F%3Fworkflow%3Dabc"
    assert guarded.get("/apps/", headers={"Accept": "text/html"}).status_code == 303
    assert guarded.post("/gradio_api/component_server/", json={}).status_code == 401
    assert guarded.get("/editor-static/editor.js").status_code == 401


def test_probes_and_published_apps_stay_reachable(guarded: TestClient):
    assert guarded.get("/healthz").status_code == 200
    ready = guarded.get("/readyz")   # answers with its report, not the login; the broker is this process's
    assert ready.status_code in (200, 503) and ready.json()["checks"]["database"] == "ok", ready.text
    assert (ready.status_code == 200) == (ready.json()["checks"]["broker"] == "ok")
    openai = guarded.get("/v1/models")
    assert openai.json()["error"]["type"] != "LoginRequired"  # the API-key check answers, not the login
    assert guarded.get("/chat/some-app").status_code in (302, 307)
    run = guarded.post("/api/v1/apps/some-app/run", json={"inputs": {}})
    assert run.status_code != 401 or run.json()["error"]["type"] != "LoginRequired"


def test_login_sets_a_session_cookie_and_logout_clears_it(guarded: TestClient):
    form = guarded.get("/login?next=/%3Fworkflow%3Dx")
    assert form.status_code == 200 and 'name="password"' in form.text and 'value="/?workflow=x"' in form.text
    wrong = guarded.post("/login", data={"password": "nope", "next": "/"})
    assert wrong.status_code == 401 and "Wrong password" in wrong.text
    right = guarded.post("/login", data={"password": PASSWORD, "next": "/?workflow=x"})
    assert right.status_code == 303 and right.headers["location"] == "/?workflow=x"
    cookie = right.cookies.get(auth.COOKIE)
    assert cookie and "httponly" in right.headers["set-cookie"].lower() and "samesite=lax" in right.headers["set-cookie"].lower()
    assert guarded.get("/api/v1/workflows").status_code == 200
    out = guarded.get("/logout")
    assert out.status_code == 303
    guarded.cookies.clear()
    assert guarded.get("/api/v1/workflows").status_code == 401


def test_redirects_after_login_stay_on_this_site(guarded: TestClient):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil", ""):
        response = guarded.post("/login", data={"password": PASSWORD, "next": target})
        assert response.headers["location"] == "/", target


def test_basic_credentials_work_for_scripts(guarded: TestClient):
    good = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    bad = base64.b64encode(b"admin:guess").decode()
    assert guarded.get("/api/v1/workflows", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert guarded.get("/api/v1/workflows", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    assert guarded.get("/api/v1/workflows", headers={"Authorization": "Basic !!"}).status_code == 401


def test_session_cookies_are_signed():
    key = auth.derive_key(PASSWORD)
    token = auth.sign(key, "abc123")
    assert auth.signed_session_id(key, token) == "abc123"
    assert auth.signed_session_id(auth.derive_key("another password"), token) is None
    assert auth.signed_session_id(key, token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    assert auth.signed_session_id(key, "other." + token.partition(".")[2]) is None
    for junk in (None, "", "abc", "x.y", "."):
        assert auth.signed_session_id(key, junk) is None


def test_logout_ends_the_session_on_the_server(guarded: TestClient):
    right = guarded.post("/login", data={"password": PASSWORD, "next": "/"})
    stolen = right.cookies.get(auth.COOKIE)
    assert guarded.get("/api/v1/workflows").status_code == 200
    assert guarded.post("/logout").status_code == 303
    # A copy of the cookie taken before logout (another tab, a thief) is refused too.
    guarded.cookies.clear()
    guarded.cookies.set(auth.COOKIE, stolen)
    replay = guarded.get("/api/v1/workflows")
    assert replay.status_code == 401 and replay.json()["error"]["type"] == "LoginRequired"


def test_an_expired_session_is_refused(guarded: TestClient):
    from datetime import timedelta

    from sqlalchemy import update

    from api.admin_sessions import AdminSession
    from store.clock import utcnow
    from store.db import session_scope

    guarded.post("/login", data={"password": PASSWORD, "next": "/"})
    assert guarded.get("/api/v1/workflows").status_code == 200
    with session_scope() as session:
        session.exec(update(AdminSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert guarded.get("/api/v1/workflows").status_code == 401


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def _wait_for_next_window() -> None:
    # Start at the beginning of a lockout window, so every attempt below falls in the same one.
    seconds = auth.get_settings().login_lockout_seconds
    time.sleep(seconds - time.time() % seconds + 0.05)


def test_parallel_basic_guesses_are_cut_off_at_the_limit(guarded: TestClient):
    limit = auth.get_settings().login_failures_per_client
    _wait_for_next_window()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: guarded.get("/api/v1/workflows", headers=_basic(f"guess{i}")).status_code,
                              range(40)))
    assert codes.count(401) == limit and codes.count(429) == 40 - limit
    locked = guarded.get("/api/v1/workflows", headers=_basic(PASSWORD))  # the right password is no oracle
    assert locked.status_code == 429 and 0 < int(locked.headers["Retry-After"]) <= LOCKOUT_SECONDS + 1
    time.sleep(int(locked.headers["Retry-After"]) + 0.1)
    assert guarded.get("/api/v1/workflows", headers=_basic(PASSWORD)).status_code == 200


def test_login_form_is_throttled_and_works_again_after_the_window(guarded: TestClient):
    limit = auth.get_settings().login_failures_per_client
    _wait_for_next_window()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: guarded.post("/login", data={"password": f"guess{i}", "next": "/"}).status_code,
                              range(20)))
    assert codes.count(401) == limit and codes.count(429) == 20 - limit
    locked = guarded.post("/login", data={"password": PASSWORD, "next": "/"})
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    assert "try again in" in locked.json()["error"]["message"]
    time.sleep(int(locked.headers["Retry-After"]) + 0.1)
    assert guarded.post("/login", data={"password": PASSWORD, "next": "/"}).status_code == 303


def test_successful_logins_use_up_no_budget(guarded: TestClient):
    limit = auth.get_settings().login_failures_per_client
    _wait_for_next_window()
    for _ in range(limit * 3):
        assert guarded.get("/api/v1/workflows", headers=_basic(PASSWORD)).status_code == 200


def test_failures_from_every_client_together_are_limited(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from store.db import _engine_for

    monkeypatch.setenv("STACKYARD_LOGIN_FAILURES_TOTAL", "6")
    with make_client(data_dir, monkeypatch, PASSWORD) as client:
        _wait_for_next_window()
        codes = []
        for i in range(4):  # four clients, three guesses each: each below its own limit of 5
            with TestClient(client.app, client=(f"10.0.0.{i}", 5000)) as other:
                codes += [other.get("/api/v1/workflows", headers=_basic("guess")).status_code for _ in range(3)]
    _engine_for.cache_clear()
    assert codes.count(401) == 6 and codes.count(429) == 6


def _post_login(app, *, length: int | None, chunks: int, chunk: bytes = b"x" * 1024) -> tuple[int, bytes, int]:
    """POST /login straight into the ASGI app: (status, body, bytes the app pulled from the body stream)."""
    headers = [(b"host", b"testserver"), (b"content-type", b"application/x-www-form-urlencoded")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/login", "raw_path": b"/login", "root_path": "", "query_string": b"", "headers": headers,
             "client": ("10.9.9.9", 5000), "server": ("testserver", 80)}
    pulled, sent, answer = 0, 0, {"status": 0, "body": b""}

    async def receive() -> dict:
        nonlocal pulled, sent
        if sent == chunks:
            return {"type": "http.disconnect"}
        sent += 1
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": sent < chunks}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return answer["status"], answer["body"], pulled


def test_an_oversized_login_form_is_refused_before_it_is_read(guarded: TestClient):
    # /login is public: a body over MAX_LOGIN_BODY gets 413 naming the limit, without reading it all first.
    status, body, pulled = _post_login(guarded.app, length=10_000_000, chunks=1000)
    assert status == 413 and f"the limit is {auth.MAX_LOGIN_BODY} bytes".encode() in body
    assert pulled == 0  # refused by its Content-Length alone
    status, body, pulled = _post_login(guarded.app, length=None, chunks=1000)  # streamed, no length given
    assert status == 413 and f"the limit is {auth.MAX_LOGIN_BODY} bytes".encode() in body
    assert pulled <= auth.MAX_LOGIN_BODY + 1024  # stopped at the first chunk past the limit
    assert guarded.post("/login", data={"password": PASSWORD, "next": "/"}).status_code == 303  # a real form works
