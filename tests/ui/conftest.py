"""Fixtures shared by the pages' tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.web import open_client

# Playwright's waits (5 s for an assertion, 30 s for an action) held on a normal day and failed on a day this VM
# ran the same commit's whole suite 2.6x slower (47:50 against 18:25). A wait ends as soon as what it waits for
# is there, so longer limits cost a passing test nothing.
ASSERT_MS, ACTION_MS = 15_000, 60_000


@pytest.fixture
def client(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The whole web app (API and pages, no login) on a fresh SQLite database, over HTTP without a browser."""
    with open_client(monkeypatch, f"sqlite:///{data_dir / 'stackyard.db'}", STACKYARD_ADMIN_PASSWORD=None) as test_client:
        yield test_client


@pytest.fixture(scope="session", autouse=True)
def _patient_waits() -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=ASSERT_MS)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium (see ``tests.support.editor_browser.launch``), one per module."""
    from playwright.sync_api import sync_playwright

    from tests.support.editor_browser import launch

    with sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh 1440×900 page; the test fails on any JavaScript error the page raised."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(ACTION_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"
