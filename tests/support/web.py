"""The whole web app (API and pages) for tests that talk to it over HTTP without a browser, built once per test
process for each set of settings it is built with.

Building it costs 1-2 CPU-s (seventeen Gradio apps, ~1,500 routes); a test needs a fresh database, not a fresh
app. What the app fixes when it is built (the login's password and window, the allowed origins and hosts) is the
``env`` it is built under; everything else is read per request, so each test points the settings at its own data
dir and database before it opens a client (:func:`open_client`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

# Read when the app is built (api.auth.install, api.guard.install): a test setting one of them other than its app
# was built with would test the wrong app, so their values are the key the apps are kept under.
BUILD_SETTINGS = ("STACKYARD_ADMIN_PASSWORD", "STACKYARD_LOGIN_LOCKOUT_SECONDS", "STACKYARD_LOGIN_FAILURES_PER_CLIENT",
                  "STACKYARD_LOGIN_FAILURES_TOTAL", "STACKYARD_ALLOWED_ORIGINS", "STACKYARD_ALLOWED_HOSTS")
_apps: dict[tuple[tuple[str, str], ...], FastAPI] = {}


def build_env(env: dict[str, str | None]) -> dict[str, str]:
    """The process's ``BUILD_SETTINGS`` with ``env`` over them (None: unset)."""
    unknown = set(env) - set(BUILD_SETTINGS)
    assert not unknown, f"{sorted(unknown)} are read per request: set them in the test, not as the app's key"
    current = {name: os.environ[name] for name in BUILD_SETTINGS if name in os.environ}
    return {name: value for name, value in {**current, **env}.items() if value is not None}


def set_build_env(patch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in BUILD_SETTINGS:
        patch.delenv(name, raising=False)
    for name, value in env.items():
        patch.setenv(name, value)


def web_app(**env: str | None) -> FastAPI:
    """The web app built with ``env`` over the process's ``BUILD_SETTINGS``, once per process."""
    effective = build_env(env)
    key = tuple(sorted(effective.items()))
    if key not in _apps:
        from stackyard.settings import reset_settings_cache
        from stackyard.web import create_app
        from store.db import _engine_for

        with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as scratch:
            patch.setenv("STACKYARD_DATA_DIR", scratch)   # the database it migrates while it is built
            patch.delenv("STACKYARD_DATABASE_URL", raising=False)
            set_build_env(patch, effective)
            reset_settings_cache()
            try:
                _apps[key] = create_app()
            finally:
                _engine_for.cache_clear()
        reset_settings_cache()
    return _apps[key]


@contextmanager
def open_client(monkeypatch: pytest.MonkeyPatch, database_url: str, *, follow_redirects: bool = True,
                **env: str | None) -> Iterator[TestClient]:
    """A client of ``web_app(**env)`` on a freshly migrated ``database_url`` (the caller's data dir is set)."""
    from stackyard.settings import reset_settings_cache
    from store.db import _engine_for, migrate

    app = web_app(**env)
    set_build_env(monkeypatch, build_env(env))
    monkeypatch.setenv("STACKYARD_DATABASE_URL", database_url)
    reset_settings_cache()
    migrate(database_url)
    try:
        with TestClient(app, follow_redirects=follow_redirects) as client:
            yield client
    finally:
        _engine_for.cache_clear()
