"""The management API in-process (FastAPI TestClient) on SQLite and PostgreSQL: 4xx for bad input, never 500."""

from __future__ import annotations

import pytest
import yaml
from fastapi.testclient import TestClient

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
GREET = {"components": {"p": {"type": PROMPT, "init_parameters": {"template": "Hello {{ name }}"}}},
         "inputs": {"name": ["p.name"]}, "outputs": {"greeting": "p.prompt"}}


@pytest.fixture
def client(database):
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def test_workflow_lifecycle(client):
    created = client.post("/api/v1/workflows", json={"name": "greet", "spec": GREET, "note": "first"})
    assert created.status_code == 201 and created.json()["latest_version"] == 1
    wid = created.json()["id"]
    v2 = {**GREET, "components": {"p": {"type": PROMPT, "init_parameters": {"template": "Hi {{ name }}"}}}}
    assert client.post(f"/api/v1/workflows/{wid}/versions", json={"spec": v2, "note": "second"}).status_code == 201
    versions = client.get("/api/v1/workflows/greet/versions").json()
    assert [(v["number"], v["note"]) for v in versions] == [(1, "first"), (2, "second")]
    assert client.get("/api/v1/workflows/greet/versions/1").json()["spec"]["components"]["p"]["init_parameters"]["template"] == "Hello {{ name }}"
    published = client.post("/api/v1/publications", json={"workflow": "greet", "slug": "greeter", "version": 1,
                                                           "message": "name", "reply": "greeting", "check": False})
    assert published.status_code == 201 and published.json()["version"] == 1
    assert client.get("/api/v1/workflows/greet").json()["published"] == {"greeter": 1}
    bad = client.post("/api/v1/publications", json={"workflow": "greet", "slug": "x", "message": "nope", "reply": "greeting"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "message"
    renamed = client.patch("/api/v1/workflows/greet", json={"name": "hello"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "hello"
    assert [w["name"] for w in client.get("/api/v1/workflows").json()] == ["hello"]
    exported = client.get("/api/v1/workflows/hello/export", params={"version": 1})
    assert exported.status_code == 200 and "hello-v1.yaml" in exported.headers["content-disposition"]
    assert yaml.safe_load(exported.text)["inputs"] == {"name": ["p.name"]}
    assert client.delete("/api/v1/workflows/hello").status_code == 204
    assert client.get("/api/v1/workflows/hello").status_code == 404


def test_import_yaml_body_and_validate(client):
    text = yaml.safe_dump(GREET)
    imported = client.post("/api/v1/workflows/import", params={"name": "imp"}, content=text,
                           headers={"content-type": "application/yaml"})
    assert imported.status_code == 201 and imported.json()["number"] == 1
    ok = client.post("/api/v1/validate", content=text, headers={"content-type": "application/yaml"})
    assert ok.json() == {"valid": True, "issues": [], "warnings": []}
    bad = client.post("/api/v1/validate", content=text.replace("p.prompt", "p.nope"), headers={"content-type": "application/yaml"})
    assert bad.status_code == 200 and bad.json()["valid"] is False
    assert bad.json()["issues"][0]["field"] == "outputs.greeting"


def test_validate_warns_about_a_model_this_machine_lacks(client):
    from tests.support.specs import chat

    checked = client.post("/api/v1/validate", json=chat("acme/not-on-this-machine")).json()
    assert checked["valid"] is True and checked["issues"] == []
    [warning] = checked["warnings"]
    assert (warning["node"], warning["port"], warning["code"]) == ("llm", "model", "model_unavailable")
    assert "no model 'acme/not-on-this-machine' on this machine" in warning["message"]


def test_a_file_haystack_wrote_imports_with_its_open_sockets_as_inputs(client):
    from haystack import Pipeline
    from haystack.components.builders import PromptBuilder

    pipe = Pipeline()
    pipe.add_component("p", PromptBuilder(template="Hello {{ name }}", required_variables="*"))
    text = pipe.dumps()
    assert client.post("/api/v1/validate", content=text, headers={"content-type": "application/yaml"}).json() == {
        "valid": True, "issues": [], "warnings": []}
    imported = client.post("/api/v1/workflows/import", params={"name": "plain"}, content=text,
                           headers={"content-type": "application/yaml"})
    assert imported.status_code == 201, imported.text
    spec = client.get("/api/v1/workflows/plain/versions/1").json()["spec"]
    assert spec["inputs"] == {"name": ["p.name"]} and spec["outputs"] == {"prompt": "p.prompt"}


@pytest.mark.parametrize("method,path,kwargs,status,needle", [
    ("post", "/api/v1/workflows", {"json": {"name": ""}}, 422, "name"),
    ("post", "/api/v1/workflows", {"json": {"name": "x", "spec": {"components": {"a": {"type": "os.system"}}}}}, 422, "os.system"),
    ("post", "/api/v1/workflows", {"json": {"name": "x", "spec": {"components": [1, 2]}}}, 422, "components"),
    ("post", "/api/v1/workflows/import?name=x", {"content": "components: [", "headers": {"content-type": "application/yaml"}}, 422, "YAML"),
    ("post", "/api/v1/workflows/import", {"content": "a: 1", "headers": {"content-type": "application/yaml"}}, 422, "name"),
    ("post", "/api/v1/workflows/import?name=x", {"content": "a" * (3 * 1024 * 1024), "headers": {"content-type": "application/yaml"}}, 413, "limit"),
    ("get", "/api/v1/workflows/nope/versions/1", {}, 404, "No workflow"),
    ("get", "/api/v1/workflows/nope/export", {}, 404, "No workflow"),
    ("get", "/api/v1/runs/nope", {}, 404, "No run"),
    ("post", "/api/v1/runs/nope/cancel", {}, 404, "No run"),
    ("post", "/api/v1/validate", {"content": b"\xff\xfe\x00", "headers": {"content-type": "application/yaml"}}, 200, "parse_error"),
    ("post", "/api/v1/nodes/ports", {"json": {"type": "os.system"}}, 422, "not an allowed component"),
])
def test_bad_requests_get_4xx_naming_the_problem(client, method, path, kwargs, status, needle):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert needle in str(response.json())


def test_version_conflicts_and_invalid_specs_change_nothing(client):
    client.post("/api/v1/workflows", json={"name": "w", "spec": GREET})
    assert client.post("/api/v1/workflows", json={"name": "w"}).status_code == 409
    broken = {**GREET, "outputs": {"x": "p.nothing"}}
    response = client.post("/api/v1/workflows/w/versions", json={"spec": broken})
    assert response.status_code == 422
    issue = response.json()["error"]["issues"][0]
    assert (issue["node"], issue["port"], issue["code"]) == ("p", "nothing", "bad_output_mapping")
    assert client.get("/api/v1/workflows/w").json()["latest_version"] == 1


def test_run_inputs_are_checked_before_anything_is_queued(client):
    client.post("/api/v1/workflows", json={"name": "w", "spec": GREET})
    unknown = client.post("/api/v1/workflows/w/runs", json={"inputs": {"nom": "x"}})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "inputs.nom"
    missing = client.post("/api/v1/workflows/w/runs", json={"inputs": {}})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "inputs.name"
    assert client.post("/api/v1/workflows/w/runs", json={"inputs": {}, "wait": 9999}).status_code == 422
    assert client.get("/api/v1/runs").json() == []


def test_catalog_health_and_openapi(client):
    nodes = client.get("/api/v1/nodes").json()
    assert any(n["title"] == "Prompt" for n in nodes)
    ports = client.post("/api/v1/nodes/ports", json={"type": PROMPT, "params": {"template": "{{ a }} {{ b }}"}}).json()
    assert {"a", "b"} <= {p["name"] for p in ports["inputs"]}
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/workflows", "/api/v1/workflows/{ref}/runs", "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/cancel",
                 "/api/v1/workflows/import", "/api/v1/workflows/{ref}/export", "/api/v1/validate", "/healthz", "/readyz"):
        assert path in spec["paths"], path


def test_readyz_reports_an_unreachable_broker(database, monkeypatch):
    from api.app import create_app
    from stackyard.settings import reset_settings_cache
    from tests.support.stack import free_port
    from worker import app as worker_app

    monkeypatch.setenv("STACKYARD_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    reset_settings_cache()
    monkeypatch.setattr(worker_app, "celery_app", worker_app.make_celery())
    with TestClient(create_app()) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"].startswith("unreachable")
