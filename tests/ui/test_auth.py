"""Admin login (api.auth): off by default; with STACKYARD_ADMIN_PASSWORD the editor and management API need it,
the probes and what published apps serve with their own credentials do not."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import auth

PASSWORD = "correct horse battery"


def make_client(data_dir: Path, monkeypatch: pytest.MonkeyPatch, password: str | None) -> TestClient:
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("STACKYARD_DATABASE_URL", f"sqlite:///{data_dir / 'stackyard.db'}")
    if password:
        monkeypatch.setenv("STACKYARD_ADMIN_PASSWORD", password)
    else:
        monkeypatch.delenv("STACKYARD_ADMIN_PASSWORD", raising=False)
    reset_settings_cache()
    from api.app import create_app

    return TestClient(create_app(), follow_redirects=False)


@pytest.fixture
def guarded(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from workflows.db import _engine_for

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
    assert guarded.get("/readyz").status_code in (200, 503)
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


def test_session_tokens_are_signed_and_expire():
    key = auth.derive_key(PASSWORD)
    now = int(time.time())
    token = auth.sign(key, now)
    assert auth.session_valid(key, token)
    assert not auth.session_valid(auth.derive_key("another password"), token)
    assert not auth.session_valid(key, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert not auth.session_valid(key, auth.sign(key, now - auth.SESSION_SECONDS - 10))
    assert not auth.session_valid(key, f"{now + 3600}.x")
    for junk in (None, "", "abc", "x.y"):
        assert not auth.session_valid(key, junk)
