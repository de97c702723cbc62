"""Request bodies are bounded before any work (api.bodies): an oversized body gets 413 naming
STACKYARD_MAX_BODY_BYTES whether or not it announces its length, a deeply nested one 400 naming the depth
limit (never 500), and neither stores anything; uploads keep their larger limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.specs import greet

TWENTY_MB = 20 * 1024 * 1024


@pytest.fixture
def client(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from stackyard.settings import reset_settings_cache
    from store.db import _engine_for

    monkeypatch.setenv("STACKYARD_DATABASE_URL", f"sqlite:///{data_dir / 'stackyard.db'}")
    for name in ("STACKYARD_MAX_BODY_BYTES", "STACKYARD_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    reset_settings_cache()
    from api.app import create_app
    from api.routes import editor

    app = create_app()
    app.include_router(editor.router)  # the editor's endpoints without building its pages
    with TestClient(app, raise_server_exceptions=False) as test_client:
        assert test_client.post("/api/v1/workflows", json={"name": "greet", "spec": greet()}).status_code == 201
        yield test_client
    _engine_for.cache_clear()


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def deep_json(depth: int) -> str:
    """``depth`` arrays inside each other, as text (json.dumps itself would recurse too deep)."""
    return "[" * depth + "]" * depth


def post_json(client: TestClient, path: str, text: str, **headers: str):
    return client.post(path, content=text, headers={"content-type": "application/json", **headers})


def chunks(text: str, size: int = 1024 * 1024) -> Iterator[bytes]:
    data = text.encode()
    for start in range(0, len(data), size):
        yield data[start:start + size]


def stored(client: TestClient) -> dict:
    return {"workflows": [w["name"] for w in client.get("/api/v1/workflows").json()],
            "versions": [v["number"] for v in client.get("/api/v1/workflows/greet/versions").json()],
            "runs": client.get("/api/v1/runs").json(), "jobs": client.get("/api/v1/jobs").json()}


NOTHING_NEW = {"workflows": ["greet"], "versions": [1], "runs": [], "jobs": []}


def huge_bodies() -> list[tuple[str, str]]:
    big = "x" * TWENTY_MB
    spec = greet()
    spec["components"]["p"]["init_parameters"]["template"] = big
    return [
        ("/api/v1/workflows", json.dumps({"name": "huge", "spec": spec})),
        ("/api/v1/workflows/greet/versions", json.dumps({"spec": spec})),
        ("/api/v1/workflows/greet/runs", json.dumps({"inputs": {"name": big}})),
        ("/api/v1/jobs", json.dumps({"workflow": "greet", "source": {"type": "csv", "data": "name\n" + big}})),
    ]


def test_twenty_megabyte_json_bodies_get_413_and_store_nothing(client: TestClient):
    for path, text in huge_bodies():
        response = post_json(client, path, text)
        assert response.status_code == 413, (path, response.text[:300])
        assert "STACKYARD_MAX_BODY_BYTES" in response.json()["error"]["message"], path
    assert stored(client) == NOTHING_NEW


def test_a_body_without_content_length_is_stopped_while_it_streams(client: TestClient):
    for path, text in huge_bodies():
        response = client.post(path, content=chunks(text), headers={"content-type": "application/json"})
        assert "content-length" not in response.request.headers  # chunked: only the running count can stop it
        assert response.status_code == 413, (path, response.text[:300])
        assert "STACKYARD_MAX_BODY_BYTES" in response.json()["error"]["message"], path
    assert stored(client) == NOTHING_NEW


def test_the_limit_follows_the_setting(data_dir: Path, monkeypatch: pytest.MonkeyPatch, client: TestClient):
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("STACKYARD_MAX_BODY_BYTES", "4096")
    reset_settings_cache()
    over = client.post("/api/v1/workflows/greet/runs", json={"inputs": {"name": "x" * 5000}})
    assert over.status_code == 413 and "4096 bytes (STACKYARD_MAX_BODY_BYTES)" in over.json()["error"]["message"]
    under = client.post("/api/v1/workflows/greet/runs", json={"inputs": {"name": "x" * 3000}})
    assert under.status_code == 202, under.text


def test_uploads_keep_their_own_larger_limits(client: TestClient, data_dir: Path):
    three_mb = "name\n" + "".join(f"{i} {'x' * 3200}\n" for i in range(1000))
    assert len(three_mb) > 3 * 1024 * 1024
    job = client.post("/api/v1/jobs", files={"file": ("people.csv", three_mb, "text/csv")},
                      data={"job": json.dumps({"workflow": "greet"})})
    assert job.status_code == 201, job.text[:300]
    assert job.json()["total"] == 1000
    a_json_file = b"[" + b"1," * 2_000_000 + b"1]"  # uploaded with its own type, stored as is
    upload = client.post("/api/v1/editor/files", params={"name": "big.json"}, content=a_json_file,
                         headers={"content-type": "application/json"})
    assert upload.status_code == 201, upload.text[:300]
    assert (data_dir / "files" / upload.json()["path"]).read_bytes() == a_json_file


@pytest.mark.parametrize("depth", [65, 300, 5_000, 200_000])
def test_deeply_nested_json_gets_400_naming_the_limit(client: TestClient, depth: int):
    spec = json.dumps(greet()).replace('"Hello {{ name }}"', f'"Hello {{{{ name }}}}", "variables": {deep_json(depth)}')
    key = client.post("/api/v1/keys", json={"name": "deep"}).json()["key"]
    bodies = [
        ("/api/v1/workflows", f'{{"name": "deep", "spec": {spec}}}'),
        ("/api/v1/workflows/greet/versions", f'{{"spec": {spec}}}'),
        ("/api/v1/workflows/greet/runs", f'{{"inputs": {{"name": {deep_json(depth)}}}}}'),
        ("/api/v1/jobs", f'{{"workflow": "greet", "source": {{"type": "csv", "data": "name\\nA"}}, '
                         f'"fixed": {{"x": {deep_json(depth)}}}}}'),
        ("/api/v1/editor/connect-check", f'{{"spec": {spec}, "sender": "a.b", "receiver": "c.d"}}'),
        ("/api/v1/nodes/ports", f'{{"type": "x", "params": {{"a": {deep_json(depth)}}}}}'),
        ("/api/v1/apps/nope/run", f'{{"inputs": {{"name": {deep_json(depth)}}}}}'),
        ("/v1/chat/completions", f'{{"model": "nope", "messages": [{{"role": "user", "content": {deep_json(depth)}}}]}}'),
    ]
    for path, text in bodies:
        response = post_json(client, path, text, authorization=f"Bearer {key}")
        assert response.status_code == 400, (path, response.status_code, response.text[:300])
        assert "more than 64 levels deep" in response.json()["error"]["message"], path
    assert stored(client) == NOTHING_NEW


def test_nesting_up_to_the_limit_and_ordinary_requests_are_unaffected(client: TestClient):
    inside = client.post("/api/v1/workflows/greet/runs", json={"inputs": {"name": nested(62)}})
    assert inside.status_code == 202, inside.text[:300]  # body → inputs → name → 62 lists = 64 levels
    ordinary = client.post("/api/v1/workflows/greet/versions", json={"spec": greet(), "note": "again"})
    assert ordinary.status_code == 201 and ordinary.json()["number"] == 2
    malformed = post_json(client, "/api/v1/workflows/greet/runs", '{"inputs": ')
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["error"]["message"]
    missing = client.post("/api/v1/workflows", json={"spec": greet()})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "name"
