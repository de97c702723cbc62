"""Fixtures shared by the pages' tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def client(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The whole web app (API and pages, no login) on a fresh SQLite database, over HTTP without a browser."""
    from stackyard.settings import reset_settings_cache
    from store.db import _engine_for

    monkeypatch.setenv("STACKYARD_DATABASE_URL", f"sqlite:///{data_dir / 'stackyard.db'}")
    monkeypatch.delenv("STACKYARD_ADMIN_PASSWORD", raising=False)
    reset_settings_cache()
    from stackyard.web import create_app

    with TestClient(create_app()) as test_client:
        yield test_client
    _engine_for.cache_clear()
