"""A chat completion whose run does not end in time: the run is cancelled and the client gets an answer that
says so (504 in OpenAI's error shape, or an error event with code 'timeout' when streaming), never a 'run
running' failure with the run left going. No worker runs here, so the run never starts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.specs import greet


@pytest.fixture
def client(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str]]:
    from stackyard.settings import reset_settings_cache
    from store.db import _engine_for

    monkeypatch.setenv("STACKYARD_DATABASE_URL", f"sqlite:///{data_dir / 'stackyard.db'}")
    monkeypatch.delenv("STACKYARD_ADMIN_PASSWORD", raising=False)
    reset_settings_cache()
    from api.app import create_app
    from api.routes import openai_compat
    from apps import keys, publishing
    from store.db import session_scope

    monkeypatch.setattr(openai_compat, "COMPLETION_TIMEOUT_SECONDS", 0.5)
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        assert test_client.post("/api/v1/workflows", json={"name": "greet", "spec": greet()}).status_code == 201
        with session_scope() as session:
            publishing.publish(session, ref="greet", slug="hello", message="name", reply="greeting")
            _, key = keys.create_key(session)
        yield test_client, key
    _engine_for.cache_clear()


def ask(client: TestClient, key: str, **extra) -> object:
    return client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"model": "hello", "messages": [{"role": "user", "content": "Ada"}], **extra})


def runs_of(client: TestClient) -> list[dict]:
    return client.get("/api/v1/runs").json()


def test_a_reply_that_does_not_come_in_time_is_a_504_and_its_run_is_cancelled(client):
    test_client, key = client
    response = ask(test_client, key)
    assert response.status_code == 504, response.text
    message = response.json()["error"]["message"]
    assert "still queued after 0.5 s and was cancelled" in message and "/api/v1/apps/{slug}/run" in message
    [run] = runs_of(test_client)
    assert run["state"] == "cancelled"


def test_a_streamed_reply_that_does_not_come_in_time_ends_with_a_timeout_event(client):
    test_client, key = client
    response = ask(test_client, key, stream=True)
    assert response.status_code == 200
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "timeout" and "was cancelled" in error["message"]
    [run] = runs_of(test_client)
    assert run["state"] == "cancelled"
