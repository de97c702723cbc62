"""Fixtures shared by the pages' tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.web import open_client


@pytest.fixture
def client(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The whole web app (API and pages, no login) on a fresh SQLite database, over HTTP without a browser."""
    with open_client(monkeypatch, f"sqlite:///{data_dir / 'stackyard.db'}", STACKYARD_ADMIN_PASSWORD=None) as test_client:
        yield test_client
