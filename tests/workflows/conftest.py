"""Fixtures shared by the workflow definition's tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def ollama_operator(monkeypatch):
    """An operator's Ollama setup: its key variable granted to workflows, its server admitted by name."""
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("STACKYARD_SECRET_ENV", "OLLAMA_KEY")
    monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", "ollama:11434")
    reset_settings_cache()
    yield
    reset_settings_cache()
