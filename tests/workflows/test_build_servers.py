"""OpenAI-compatible components pointed at a server: a keyless local server needs no key variable, and a
workflow that names no key never sends the OpenAI key to another server."""

from __future__ import annotations

import pytest

from stackyard.settings import reset_settings_cache
from tests.support.openai_server import ChatServer
from tests.support.specs import remote_chat
from workflows.execute import run_pipeline
from workflows.spec import spec_from_dict
from workflows.validation import build_pipeline, validate


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    with ChatServer("hello from a local server") as chat_server:
        monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{chat_server.port}")
        reset_settings_cache()
        yield chat_server
    reset_settings_cache()


@pytest.mark.parametrize("openai_key", [None, "sk-the-operators-openai-key"], ids=["no-openai-key", "openai-key-set"])
def test_a_keyless_local_server_needs_no_key_variable(server: ChatServer, monkeypatch: pytest.MonkeyPatch,
                                                      openai_key: str | None):
    if openai_key:
        monkeypatch.setenv("OPENAI_API_KEY", openai_key)
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = remote_chat(server.base_url)
    del data["components"]["llm"]["init_parameters"]["api_key"]
    spec = spec_from_dict(data)
    assert validate(spec) == []
    outputs = run_pipeline(spec, build_pipeline(spec), {"question": "there?"})
    assert outputs["answer"][0]["text"] == "hello from a local server"
    assert server.authorizations == ["Bearer no-key"]  # a placeholder, never the OpenAI key
    assert spec.components["llm"].init_parameters.get("api_key") is None  # the stored workflow is unchanged


def test_a_workflow_cannot_name_the_placeholder_variable(server: ChatServer):
    data = remote_chat(server.base_url, key_env="STACKYARD_KEYLESS_SERVER_KEY")
    [issue] = validate(spec_from_dict(data))
    assert issue.node == "llm" and "STACKYARD_KEYLESS_SERVER_KEY" in issue.message
