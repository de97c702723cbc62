"""OpenAI-compatible components pointed at a server: a keyless local server needs no key variable, a
workflow that names no key never sends the OpenAI key to another server, and a server the workflow may call
cannot send its requests on to one it may not."""

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


def test_a_redirect_from_an_allowed_server_to_another_is_not_followed(server: ChatServer):
    """The OpenAI client follows redirects by itself: an allowed (public) server answering 307 to a metadata
    or loopback address would have the run's request, with its key, sent there."""
    with ChatServer("the inner server", redirect_to=server.base_url) as hostile, pytest.MonkeyPatch.context() as env:
        env.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{hostile.port}")  # only the redirecting server
        reset_settings_cache()
        data = remote_chat(hostile.base_url)
        del data["components"]["llm"]["init_parameters"]["api_key"]
        spec = spec_from_dict(data)
        with pytest.raises(Exception, match="307"):
            run_pipeline(spec, build_pipeline(spec), {"question": "there?"})
        assert len(hostile.requests) == 1 and server.requests == []


def test_the_built_clients_connections_are_checked_when_opened(server: ChatServer):
    """The URL is checked when the pipeline is built, and the built pipeline serves later runs: a name that
    resolved to the allowed server then may resolve elsewhere by the time it connects (DNS rebinding). Every
    connection the component's client opens is checked again; here the client is pointed at an address the
    settings do not admit, as a rebound name would point it."""
    data = remote_chat(server.base_url)
    del data["components"]["llm"]["init_parameters"]["api_key"]
    spec = spec_from_dict(data)
    pipeline = build_pipeline(spec)
    assert run_pipeline(spec, pipeline, {"question": "there?"})["answer"][0]["text"] == "hello from a local server"
    llm = pipeline.get_component("llm")
    with ChatServer("not admitted") as elsewhere:
        rebound = llm.client.with_options(base_url=elsewhere.base_url)
        with pytest.raises(Exception, match="not a public address"):
            rebound.chat.completions.create(model="local-model", messages=[{"role": "user", "content": "hi"}])
        assert elsewhere.requests == []


@pytest.mark.parametrize("options", [{"proxy": "http://93.184.216.34:3128"}, {"mounts": {"all://": "x"}}, "not-an-object"])
def test_client_options_that_would_connect_around_the_checks_are_refused(server: ChatServer, options):
    """A proxy gets its own transport in httpx, which connects to it unchecked (a rebound name reaches this
    machine); mounts and transports likewise."""
    data = remote_chat(server.base_url)
    del data["components"]["llm"]["init_parameters"]["api_key"]
    data["components"]["llm"]["init_parameters"]["http_client_kwargs"] = options
    [issue] = validate(spec_from_dict(data))
    assert issue.node == "llm" and issue.port == "http_client_kwargs" and "http_client_kwargs" in issue.message


def test_the_workflows_own_client_options_are_kept(server: ChatServer):
    data = remote_chat(server.base_url)
    del data["components"]["llm"]["init_parameters"]["api_key"]
    data["components"]["llm"]["init_parameters"]["http_client_kwargs"] = {"verify": False, "limits": {"max_connections": 2},
                                                                           "headers": {"X-Team": "search"}}
    spec = spec_from_dict(data)
    assert validate(spec) == []
    assert run_pipeline(spec, build_pipeline(spec), {"question": "there?"})["answer"][0]["text"] == "hello from a local server"
