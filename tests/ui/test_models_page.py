"""The models page's handlers, called directly (no browser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackyard.settings import reset_settings_cache
from tests.support.openai_server import ChatServer
from tests.support.stack import free_port
from ui import models_page


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("STACKYARD_OLLAMA_URL", f"http://127.0.0.1:{free_port()}")
    for name in ("STACKYARD_LLM_SERVERS", "STACKYARD_MODEL_ROOTS", "STACKYARD_MODEL_PATHS", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    reset_settings_cache()
    yield monkeypatch
    reset_settings_cache()


def test_the_page_says_what_to_set_when_nothing_can_generate(machine):
    local, servers, summary, picker = models_page.overview()
    assert [row[:3] for row in local] == [["sentence-transformers/all-MiniLM-L6-v2", "embedder", "bundled"]]
    assert servers == [] and picker["choices"] == []
    assert summary.startswith("⚠️ No generator is available") and "STACKYARD_LLM_SERVERS" in summary
    assert models_page.test_connection(None).startswith("⚠️ Pick a server first")


def test_a_server_is_listed_tested_and_chosen(machine):
    with ChatServer(models=("llama3",)) as server:
        machine.setenv("STACKYARD_LLM_SERVERS", json.dumps({"gateway": server.base_url}))
        reset_settings_cache()
        _, servers, summary, picker = models_page.overview()
        assert servers == [["gateway", server.base_url, "configured", "yes", "llama3", ""]]
        assert picker["value"] == "gateway"
        assert summary.startswith("✅ New chat workflows answer with `llama3`") and server.base_url in summary
        assert models_page.test_connection("gateway").startswith("✅ 'gateway' answered in ")
    down = models_page.test_connection("gateway")  # the server has stopped
    assert down.startswith("⚠️ 'gateway' did not answer") and "ConnectError" in down
    assert "No model server named 'nope'" in models_page.test_connection("nope")
