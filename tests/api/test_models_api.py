"""GET /api/v1/models and the server connection test, over HTTP: a model folder made by the test, the bundled
MiniLM, the in-test OpenAI-compatible server (configured, and found where Ollama would be), provider keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.openai_server import ChatServer
from tests.support.stack import free_port


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Set STACKYARD_* (and other) variables for one test, on an empty model cache and no Ollama."""
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("STACKYARD_OLLAMA_URL", f"http://127.0.0.1:{free_port()}")
    for name in ("STACKYARD_LLM_SERVERS", "STACKYARD_MODEL_ROOTS", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)

    def configure(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        reset_settings_cache()

    configure()
    yield configure
    reset_settings_cache()


@pytest.fixture
def client(database, settings):
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def test_a_machine_with_no_generator_says_what_to_set(client: TestClient):
    found = client.get("/api/v1/models").json()
    assert found["default_generator"] is None and found["servers"] == [] and found["keys"] == []
    assert "STACKYARD_MODEL_PATHS" in found["hint"] and "STACKYARD_LLM_SERVERS" in found["hint"]
    [minilm] = found["local"]  # the embedder that ships with Stackyard is always there
    assert (minilm["name"], minilm["kind"], minilm["source"]) == ("sentence-transformers/all-MiniLM-L6-v2", "embedder",
                                                                  "bundled")


def test_local_folders_servers_and_keys_are_listed_and_a_default_chosen(client: TestClient, settings, tiny_model: Path,
                                                                         tmp_path: Path):
    roots = tmp_path / "models"
    (roots / "notes").mkdir(parents=True)                       # a folder that holds no model is not listed
    (roots / "chat").symlink_to(tiny_model, target_is_directory=True)
    settings(STACKYARD_MODEL_ROOTS=str(roots))
    local = {m["source"]: m for m in client.get("/api/v1/models").json()["local"]}
    assert local["model root"]["kind"] == "generator" and local["model root"]["name"] == str(tiny_model.resolve())
    snapshot = tmp_path / "empty-cache" / "models--acme--tiny-chat" / "snapshots" / "0123abcd"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(tiny_model, target_is_directory=True)  # as the hub's cache lays out a downloaded model
    (snapshot.parent / "dangling").symlink_to(tmp_path / "removed")  # what an interrupted download leaves
    cached = {m["source"]: m for m in client.get("/api/v1/models").json()["local"]}["cache"]
    assert (cached["name"], cached["kind"]) == ("acme/tiny-chat", "generator")
    generator = client.get("/api/v1/models").json()["default_generator"]
    assert generator["init_parameters"]["model"] == str(tiny_model.resolve()) and generator["type"].endswith(
        "TransformersChatGenerator")

    with ChatServer(models=("llama3", "qwen")) as server:
        settings(STACKYARD_LLM_SERVERS=json.dumps({"gateway": server.base_url}), OPENAI_API_KEY="sk-set",
                 STACKYARD_SECRET_ENV="OPENAI_API_KEY,OLLAMA_KEY")
        found = client.get("/api/v1/models").json()
        [gateway] = found["servers"]
        assert (gateway["name"], gateway["reachable"], gateway["models"]) == ("gateway", True, ["llama3", "qwen"])
        assert found["keys"] == ["OPENAI_API_KEY"] and "sk-set" not in json.dumps(found)
        assert found["default_generator"] == {   # a server the operator set up wins over a local folder
            "type": "haystack.components.generators.chat.openai.OpenAIChatGenerator",
            "init_parameters": {"model": "llama3", "api_base_url": server.base_url}, "from": "server 'gateway'"}
        tested = client.post("/api/v1/models/servers/gateway/test").json()
        assert tested["reachable"] is True and tested["models"] == ["llama3", "qwen"] and tested["latency_ms"] >= 0


def test_a_local_ollama_is_found_where_it_listens(client: TestClient, settings):
    with ChatServer(models=("llama3.2",)) as ollama:
        settings(STACKYARD_OLLAMA_URL=f"http://127.0.0.1:{ollama.port}")
        [found] = client.get("/api/v1/models").json()["servers"]
        assert (found["name"], found["source"], found["models"]) == ("ollama", "detected", ["llama3.2"])
        assert found["url"] == ollama.base_url
        # Found, but workflows may not call this machine's own ports until an operator admits it: a new
        # workflow would be refused, so it is not the default generator yet.
        assert client.get("/api/v1/models").json()["default_generator"] is None
        settings(STACKYARD_FETCH_ALLOWED_HOSTS=f"127.0.0.1:{ollama.port}")
        chosen = client.get("/api/v1/models").json()["default_generator"]
        assert chosen["init_parameters"] == {"model": "llama3.2", "api_base_url": ollama.base_url}


def test_a_server_that_does_not_answer_says_why(client: TestClient, settings):
    down = f"http://127.0.0.1:{free_port()}/v1"
    settings(STACKYARD_LLM_SERVERS=json.dumps({"down": down}))
    [server] = client.get("/api/v1/models").json()["servers"]
    assert server["reachable"] is False and server["models"] == [] and "ConnectError" in server["error"]
    tested = client.post("/api/v1/models/servers/down/test")
    assert tested.status_code == 200 and tested.json()["reachable"] is False
    unknown = client.post("/api/v1/models/servers/nope/test")
    assert unknown.status_code == 404 and "'nope'" in unknown.text and "down" in unknown.text


def test_a_server_listing_more_than_the_limit_is_reported_not_read(client: TestClient, settings):
    from nodes.models import MAX_LISTING_BYTES

    with ChatServer(models=tuple(f"model-{i:06d}-" + "x" * 20 for i in range(40_000))) as server:
        settings(STACKYARD_LLM_SERVERS=json.dumps({"huge": server.base_url}))
        [found] = client.get("/api/v1/models").json()["servers"]
    assert found["reachable"] is False and f"over {MAX_LISTING_BYTES:,} bytes" in found["error"]


@pytest.mark.integration  # milvus-lite runs as its own process
def test_the_vector_stores_collections_are_listed(milvus: str, client: TestClient):
    from pymilvus import MilvusClient

    assert client.get("/api/v1/collections").json() == {"collections": []}
    store = MilvusClient(uri=milvus)
    for name in ("support_docs", "faq"):
        store.create_collection(name, dimension=4)
    store.close()
    assert client.get("/api/v1/collections").json() == {"collections": ["faq", "support_docs"]}


def test_a_server_address_httpx_cannot_read_is_reported_not_a_500(client: TestClient, settings):
    settings(STACKYARD_LLM_SERVERS=json.dumps({"typo": "http://llm:80a/v1"}))  # a port httpx cannot read
    listed = client.get("/api/v1/models")
    assert listed.status_code == 200, listed.text
    [server] = listed.json()["servers"]
    assert server["reachable"] is False and "InvalidURL" in server["error"]
