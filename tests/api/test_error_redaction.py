"""Error responses never echo a secret value, whatever the error quotes (in-process, SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from stackyard.settings import reset_settings_cache

LLM = "haystack.components.generators.chat.openai.OpenAIChatGenerator"
KEY = "sk-test-0d6f3a9b5e21"


@pytest.fixture
def client(database, monkeypatch: pytest.MonkeyPatch):
    from api.app import create_app

    monkeypatch.delenv("STACKYARD_SECRET_ENV", raising=False)  # the default list: OPENAI_API_KEY among it
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    reset_settings_cache()
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client
    reset_settings_cache()


def test_a_validation_error_that_quotes_a_secret_value_is_masked(client):
    # A parameter named like the key: the "unknown parameter" message and its issue quote it.
    spec = {"components": {"n": {"type": LLM, "init_parameters": {KEY: 1}}}, "inputs": {"messages": ["n.messages"]}}

    response = client.post("/api/v1/workflows", json={"name": "leaky", "spec": spec})

    assert response.status_code == 422
    error = response.json()["error"]
    assert "unknown parameter '***'" in error["message"] and "unknown parameter '***'" in error["issues"][0]["message"]
    assert KEY not in response.text
