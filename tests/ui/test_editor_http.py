"""The editor as mounted in the real app, over HTTP without a browser: page, assets, Gradio's server-function
route, the editor endpoints (edge check, uploads)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
EMBEDDER = ("haystack_integrations.components.embedders.sentence_transformers."
            "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder")


def editor_component(client: TestClient) -> dict:
    config = client.get("/config").json()
    return next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "stackyard-editor")


def test_the_page_and_its_assets_are_served_by_the_app(client: TestClient):
    from ui.editor_page import SCRIPTS, STYLES

    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for name in SCRIPTS + STYLES:
        asset = client.get(f"/editor-static/{name}")
        assert asset.status_code == 200, name
        assert ("javascript" if name.endswith(".js") else "css") in asset.headers["content-type"]
    component = editor_component(client)
    assert "/editor-static/editor.js?v=" in component["props"]["head"]
    assert "cdn" not in component["props"]["head"].lower()
    assert {"save_version", "connect_check", "validate"} <= set(component["props"]["server_fns"])


def test_server_functions_answer_through_gradios_route(client: TestClient):
    component = editor_component(client)

    def call(fn: str, data: dict) -> dict:
        response = client.post("/gradio_api/component_server/",
                               json={"session_hash": "test", "component_id": component["id"], "fn_name": fn, "data": data})
        assert response.status_code == 200, response.text
        return response.json()

    assert any(entry["type"] == PROMPT for entry in call("bootstrap", {})["catalog"])
    opened = call("create_workflow", {"name": "over-http", "template": "summarize"})
    assert opened["version"]["number"] == 1
    saved = call("save_version", {"ref": "over-http", "spec": opened["spec"], "note": "again"})
    assert saved["version"]["number"] == 2
    assert call("open_workflow", {"ref": "nope"})["error"]["type"] == "NotFound"


def test_connect_check_endpoint(client: TestClient):
    spec = {"components": {"p": {"type": PROMPT, "init_parameters": {"template": "{{ q }}"}},
                           "e": {"type": EMBEDDER, "init_parameters": {}}}}
    ok = client.post("/api/v1/editor/connect-check", json={"spec": spec, "sender": "p.prompt", "receiver": "e.text"})
    assert ok.status_code == 200 and ok.json()["ok"] is True
    into_any = client.post("/api/v1/editor/connect-check", json={"spec": spec, "sender": "e.embedding", "receiver": "p.q"})
    assert into_any.json()["ok"] is True  # a prompt variable is Any: Haystack accepts anything
    refused = client.post("/api/v1/editor/connect-check", json={"spec": {**spec, "components": {**spec["components"],
        "e2": {"type": EMBEDDER, "init_parameters": {}}}}, "sender": "e.embedding", "receiver": "e2.text"})
    assert refused.json()["ok"] is False and "list[float]" in refused.json()["message"]
    bad = client.post("/api/v1/editor/connect-check", json={"spec": {"components": 1}, "sender": "a.b", "receiver": "c.d"})
    assert bad.status_code == 422 and bad.json()["error"]["issues"]


def test_uploads_land_under_the_files_root_with_a_safe_name(client: TestClient, data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    response = client.post("/api/v1/editor/files", params={"name": "../../etc/pass wd?.txt"}, content=b"hello",
                           headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    relative = response.json()["path"]
    assert relative.startswith("uploads/") and relative.endswith("/pass wd_.txt")
    assert (data_dir / "files" / relative).read_bytes() == b"hello"
    assert response.json()["size"] == 5

    octet = {"Content-Type": "application/octet-stream"}
    assert client.post("/api/v1/editor/files", params={"name": "..."}, content=b"x", headers=octet).status_code == 422
    for simple in ("text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"):
        refused = client.post("/api/v1/editor/files", params={"name": "a.txt"}, content=b"x", headers={"Content-Type": simple})
        assert refused.status_code == 415, simple  # a cross-site form could send these without a preflight
    from api.routes import editor

    monkeypatch.setattr(editor, "MAX_UPLOAD_BYTES", 10)
    too_big = client.post("/api/v1/editor/files", params={"name": "big.bin"}, content=b"x" * 100, headers=octet)
    assert too_big.status_code == 413
    assert not list((data_dir / "files").rglob("big.bin"))


@pytest.mark.parametrize("warm_up", [True, False])
def test_the_palette_is_built_at_start_unless_turned_off(data_dir: Path, monkeypatch: pytest.MonkeyPatch, warm_up: bool):
    """On, the palette is built in the background before any page asks; off (API-only web processes), nothing is
    built until the first editor page asks for it, and that page still gets the whole palette."""
    import threading

    from stackyard.settings import reset_settings_cache
    from tests.support.stack import wait_until
    from ui import handlers

    monkeypatch.setenv("STACKYARD_DATABASE_URL", f"sqlite:///{data_dir / 'stackyard.db'}")
    monkeypatch.setenv("STACKYARD_EDITOR_WARM_UP", str(warm_up).lower())
    monkeypatch.setattr(handlers, "_catalog", None)
    reset_settings_cache()
    from stackyard.web import create_app

    with TestClient(create_app()) as client:
        if warm_up:
            wait_until(lambda: handlers._catalog is not None, timeout=60, message="the palette built at start")
        else:
            assert "editor-catalog-warm-up" not in {thread.name for thread in threading.enumerate()}
            assert handlers._catalog is None
        component = editor_component(client)
        response = client.post("/gradio_api/component_server/", json={
            "session_hash": "test", "component_id": component["id"], "fn_name": "bootstrap", "data": {}})
        assert any(entry["type"] == PROMPT for entry in response.json()["catalog"])


def test_a_pages_gradio_call_past_the_body_limit_is_refused_before_gradio_reads_it(client: TestClient,
                                                                                  monkeypatch: pytest.MonkeyPatch):
    from api.bodies import GRADIO_ENVELOPE_BYTES
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("STACKYARD_MAX_BODY_BYTES", "4096")
    reset_settings_cache()
    component = editor_component(client)

    def body(fn: str, data: dict) -> bytes:
        return json.dumps({"session_hash": "t", "component_id": component["id"], "fn_name": fn, "data": data}).encode()

    def call(content) -> httpx.Response:
        return client.post("/gradio_api/component_server/", content=content, headers={"content-type": "application/json"})

    opened = json.loads(call(body("create_workflow", {"name": "big", "template": "summarize"})).content)
    spec = opened["spec"]
    padded = {**spec, "metadata": {**spec.get("metadata", {}), "pad": "x" * (4096 + GRADIO_ENVELOPE_BYTES)}}
    huge = body("save_version", {"ref": "big", "spec": padded})
    for content in (huge, iter([huge[:50_000], huge[50_000:]])):  # with a Content-Length, then chunked
        refused = call(content)
        assert refused.status_code == 413, refused.text
        assert "STACKYARD_MAX_BODY_BYTES" in refused.json()["error"]["message"]
    assert json.loads(call(body("open_workflow", {"ref": "big"})).content)["version"]["number"] == 1
    assert json.loads(call(body("save_version", {"ref": "big", "spec": spec})).content)["version"]["number"] == 2
