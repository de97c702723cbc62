"""Published chat apps through the official `openai` client, against a real web server, worker and Redis (and,
for token streaming, the embedded SQLite broker of ``make run``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.chat import client_for, new_key
from tests.support.openai_server import ChatServer
from tests.support.specs import chat, remote_chat
from tests.support.stack import TINY, Stack, process_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SLOW_REPLY = "one two three four five six seven eight"
WORD_DELAY = 0.4


@pytest.fixture(scope="module")
def slow_llm() -> Iterator[ChatServer]:
    with ChatServer(SLOW_REPLY, delay=WORD_DELAY) as server:
        yield server


def serve(kind: str, root: Path, tiny_model: Path, cold_model: Path, slow_llm: ChatServer,
          apps: tuple[str, ...] = ("local", "slow")) -> Iterator[Stack]:
    """Web and a worker on ``kind``'s broker, with the local and/or the slow remote chat app published (the
    publish check is tested in tests/apps; here it would only load the model early)."""
    gen = process_stack(kind, root, tiny_model, cold_model)
    stack = next(gen)
    stack.extra_env["TEST_LLM_KEY"] = "k"
    stack.start_web()
    worker = stack.start_worker(queues="cpu,gpu", concurrency=2, name="worker-chat")
    local = chat(TINY)
    local["metadata"] = {"stackyard": {"chat": {"message": "question", "reply": "answer"}}}
    stack.create("local-chat", local)
    slow = remote_chat(slow_llm.base_url)
    slow["metadata"] = {"stackyard": {"chat": {"message": "question", "reply": "answer"}}}
    stack.create("slow-chat", slow)
    for workflow, slug in (("local-chat", "local"), ("slow-chat", "slow")):
        if slug not in apps:
            continue
        response = stack.api("POST", "/api/v1/publications", json={"workflow": workflow, "slug": slug, "check": False})
        assert response.status_code == 201, response.text
    yield stack
    stack.discard(worker)
    for _ in gen:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, cold_model: Path, slow_llm: ChatServer) -> Iterator[Stack]:
    yield from serve("redis", tmp_path_factory.mktemp("chat"), tiny_model, cold_model, slow_llm)


@pytest.fixture(scope="module")
def served_embedded(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, cold_model: Path,
                    slow_llm: ChatServer) -> Iterator[Stack]:
    """The default ``make run`` topology: the SQLite broker and database, no Redis."""
    yield from serve("embedded", tmp_path_factory.mktemp("chat-embedded"), tiny_model, cold_model, slow_llm,
                     apps=("slow",))


def test_non_streaming_completion_and_models(served: Stack):
    client = client_for(served, new_key(served, name="all apps"))
    completion = client.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "the answer is stackyard"
    assert completion.choices[0].finish_reason == "stop"
    assert {m.id for m in client.models.list().data} >= {"local", "slow"}
    scoped = client_for(served, new_key(served, app="slow"))
    assert [m.id for m in scoped.models.list().data] == ["slow"]


def test_the_apps_pages_snippet_runs_as_written(served: Stack):
    import contextlib
    import io

    from ui.apps_page import call_snippet

    snippet = call_snippet(served.base_url, new_key(served, app="local"), "local")
    python = snippet.split("# Python (pip install openai)\n", 1)[1]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(python, "snippet.py", "exec"), {})  # noqa: S102 - the code this page shows a user
    assert printed.getvalue() == "the answer is stackyard\n"
    assert f"curl {served.base_url}/v1/chat/completions" in snippet


@pytest.mark.parametrize("topology", ["served", "served_embedded"], ids=["redis", "embedded"])
def test_streaming_chunks_arrive_while_the_generator_is_still_going(topology: str, request: pytest.FixtureRequest):
    served = request.getfixturevalue(topology)
    client = client_for(served, new_key(served))
    started = time.monotonic()
    arrivals, text = [], ""
    stream = client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "count"}], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
            text += chunk.choices[0].delta.content
    generation = WORD_DELAY * len(SLOW_REPLY.split())
    assert text == SLOW_REPLY
    assert len(arrivals) == len(SLOW_REPLY.split())
    # The first word reached us long before the generator produced its last one.
    assert arrivals[0] < arrivals[-1] - generation / 2
    assert arrivals[-1] - arrivals[0] >= WORD_DELAY * (len(arrivals) - 2)


def test_local_model_streams_without_special_tokens(served: Stack):
    client = client_for(served, new_key(served))
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "stream please"}], stream=True) if c.choices]
    assert "".join(pieces) == "the answer is stackyard"
    assert sum(1 for p in pieces if p) > 1  # really token by token


def test_auth_scope_rate_and_size_errors(served: Stack):
    bad = client_for(served, "sy_wrong_key")
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}])
    assert "Invalid API key" in str(err.value)
    other = client_for(served, new_key(served, app="slow"))
    with pytest.raises(openai.PermissionDeniedError) as err:
        other.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}])
    assert "scoped to app 'slow'" in str(err.value)
    for _ in range(2):          # the window is the clock's minute: four requests crossing into the next get a retry
        limited = client_for(served, new_key(served, app="local", rate_per_minute=3))
        minute = int(time.time() // 60)
        for _ in range(3):
            limited.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}])
        try:
            limited.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}])
        except openai.RateLimitError as refused:
            assert "3 requests/min" in str(refused)
            break
        assert int(time.time() // 60) != minute, "the fourth request within a minute was not refused"
    else:
        raise AssertionError("the fourth request was never refused")
    key = new_key(served)
    huge = httpx.post(f"{served.base_url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "local", "messages": [{"role": "user", "content": "x" * 3_000_000}]}, timeout=30)
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "invalid_request_error"
    assert "STACKYARD_MAX_BODY_BYTES" in huge.json()["error"]["message"]
    missing = httpx.post(f"{served.base_url}/v1/chat/completions", json={"model": "local", "messages": []}, timeout=30)
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]["message"]
    revoked_key = new_key(served)
    key_id = next(k["id"] for k in served.api("GET", "/api/v1/keys").json() if revoked_key.startswith(k["prefix"]))
    assert served.api("DELETE", f"/api/v1/keys/{key_id}").status_code == 200
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client_for(served, revoked_key).models.list()


def test_republish_switches_atomically_and_unpublished_slugs_404(served: Stack):
    client = client_for(served, new_key(served))
    v1 = chat(TINY)
    v1["components"]["prompt"]["init_parameters"]["template"] = "V1 {{ question }}"
    v1["outputs"]["prompt"] = "prompt.prompt"
    v1["metadata"] = {"stackyard": {"chat": {"message": "question", "reply": "prompt"}}}
    served.create("versioned", v1)
    assert served.api("POST", "/api/v1/publications", json={"workflow": "versioned", "slug": "ver"}).status_code == 201
    v2 = {**v1, "components": {**v1["components"], "prompt": {**v1["components"]["prompt"], "init_parameters": {"template": "V2 {{ question }}"}}}}
    assert served.api("POST", "/api/v1/workflows/versioned/versions", json={"spec": v2}).status_code == 201
    ask = lambda: client.chat.completions.create(model="ver", messages=[{"role": "user", "content": "q"}]).choices[0].message.content  # noqa: E731
    assert ask() == "V1 q"  # a new version does not change what is served
    published = served.api("POST", "/api/v1/publications", json={"workflow": "versioned", "slug": "ver", "version": 2}).json()
    assert published["version"] == 2
    assert ask() == "V2 q"
    assert served.api("DELETE", "/api/v1/publications/ver").status_code == 204
    with pytest.raises(openai.NotFoundError) as err:
        ask()
    assert "No published app 'ver'" in str(err.value)


def test_a_client_that_disconnects_cancels_its_run(served: Stack):
    key = new_key(served)
    with httpx.stream("POST", f"{served.base_url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "slow", "stream": True, "messages": [{"role": "user", "content": "leave"}]},
                      timeout=30) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        run_id = first.split('"id": "chatcmpl-')[1].split('"')[0]
    cancelled = served.wait_state(run_id, {"cancelled", "succeeded", "failed"}, timeout=30)
    assert cancelled["state"] == "cancelled"


def test_rest_app_endpoint(served: Stack):
    key = new_key(served, app="local")
    response = served.api("POST", "/api/v1/apps/local/run", headers={"Authorization": f"Bearer {key}"},
                          json={"inputs": {"question": "rest"}, "wait": 60})
    assert response.status_code == 200 and response.json()["outputs"]["answer"][0]["text"] == "the answer is stackyard"
    queued = served.api("POST", "/api/v1/apps/local/run", headers={"Authorization": f"Bearer {key}"},
                        json={"inputs": {"question": "async"}})
    assert queued.status_code == 202
    assert served.wait_state(queued.json()["id"], {"succeeded", "failed"})["state"] == "succeeded"
    assert served.api("POST", "/api/v1/apps/local/run", json={"inputs": {}}).status_code == 401


def test_keys_are_never_stored_or_logged_in_clear(served: Stack):
    key = new_key(served, name="secret-check")
    client_for(served, key).chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}])
    from sqlalchemy import create_engine, text

    engine = create_engine(served.database_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM api_key"))]
    engine.dispose()
    assert rows and all(key not in str(row) for row in rows)
    secret = key.split("_", 2)[2]
    row = next(r for r in rows if r["name"] == "secret-check")
    assert row["last_used_at"] is not None and len(row["key_hash"]) == 64
    for log in served.root.glob("*.log"):
        content = log.read_text(errors="replace")
        assert key not in content and secret not in content, log


def test_an_app_at_its_max_concurrency_answers_429_and_frees_the_slot_when_a_reply_ends(served: Stack):
    response = served.api("POST", "/api/v1/publications", json={"workflow": "slow-chat", "slug": "slow-one",
                                                                "max_concurrency": 1})
    assert response.status_code == 201, response.text
    client = client_for(served, new_key(served))
    first = client.chat.completions.create(model="slow-one", messages=[{"role": "user", "content": "a"}], stream=True)
    next(iter(first))                                  # the stream is open: its run holds the app's one slot
    with pytest.raises(openai.RateLimitError, match="max concurrency"):
        client.chat.completions.create(model="slow-one", messages=[{"role": "user", "content": "b"}])
    assert "".join(c.choices[0].delta.content or "" for c in first if c.choices) == SLOW_REPLY
    again = client.chat.completions.create(model="slow-one", messages=[{"role": "user", "content": "c"}])
    assert again.choices[0].message.content == SLOW_REPLY


def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(served: Stack):
    import socket

    log = served.root / "web.log"
    before = log.read_text().count("Exception in ASGI application")
    host, port = served.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:  # promises 1,000 bytes, sends 10, hangs up
        conn.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
                     f"{new_key(served)}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                     '{"model": '.encode())
        time.sleep(0.5)  # the request is in the handler, waiting for the rest of its body
    time.sleep(0.5)
    assert log.read_text().count("Exception in ASGI application") == before
    completion = client_for(served, new_key(served)).chat.completions.create(
        model="local", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "the answer is stackyard"


def test_replies_too_large_for_the_finish_notice_are_read_from_the_run(served: Stack):
    from tests.support.specs import greet
    from worker.notify import NOTICE_MAX_BYTES

    spec = greet()
    spec["metadata"] = {"stackyard": {"chat": {"message": "name", "reply": "greeting"}}}
    served.create("echo", spec)
    assert served.api("POST", "/api/v1/publications", json={"workflow": "echo", "slug": "echo"}).status_code == 201
    client = client_for(served, new_key(served))
    for name in ("Ada", "A" * (NOTICE_MAX_BYTES + 1000)):  # in the notice / only in the database
        completion = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": name}])
        assert completion.choices[0].message.content == f"Hello {name}"
