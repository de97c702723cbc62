"""An agent on real processes (web, a worker, Redis, PostgreSQL, milvus-lite, MiniLM): the in-test OpenAI-compatible
server, scripted to call tools, drives it through a knowledge-base retriever on the canvas and a saved workflow to an
answer holding both results; the run's trace lists every model and tool call with its arguments; a tool that fails is
shown to the model and in the trace; max steps ends the run saying so; a workflow cannot call itself; the export
loads and answers in plain Haystack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from haystack import Pipeline

from tests.support.openai_server import ChatServer, ToolCall, tool_steps
from tests.support.specs import agent_chat, note_workflow
from tests.support.stack import Stack, process_stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASES = "/api/v1/knowledge-bases"
SEARCH = {"type": "haystack.tools.component_tool.ComponentTool", "data": {
    "component": {"type": "milvus_haystack.milvus_embedding_retriever.MilvusSparseEmbeddingRetriever",
                  "init_parameters": {"document_store": {"type": "knowledge_base", "init_parameters": {"name": "shop"}},
                                      "top_k": 1}},
    "name": "search_kb", "description": "Keyword search over the shop's handbook.",
    "parameters": {"type": "object", "properties": {"query_text": {"type": "string", "description": "Keywords."}},
                   "required": ["query_text"]}}}


SEARCH_THEN_PRICE = tool_steps([ToolCall("search_kb", {"query_text": "vault code", "top_k": 50})],  # top_k: dropped
                               [ToolCall("price_list", {"item": "tea"})])


def script(body: dict):
    question = next(m["content"] for m in body["messages"] if m["role"] == "user")
    if "loop" in question:                      # a model that never stops calling a tool, and calls it wrongly
        return [ToolCall("price_list", {"article": "tea"})]
    return SEARCH_THEN_PRICE(body)


@pytest.fixture(scope="module")
def llm() -> Iterator[ChatServer]:
    with ChatServer(reply=script) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, cold_model: Path, llm: ChatServer) -> Iterator[Stack]:
    gen = process_stack("redis", tmp_path_factory.mktemp("agents"), tiny_model, cold_model)
    stack = next(gen)
    stack.extra_env["TEST_LLM_KEY"] = "k"
    stack.start_web()
    worker = stack.start_worker(queues="cpu,gpu", name="worker-agents")
    yield stack
    stack.discard(worker)
    for _ in gen:
        pass


def finished(stack: Stack, run_id: str) -> dict:
    return wait_until(lambda: (run := stack.run(run_id))["finished"] and run, timeout=120, interval=0.2,
                      message=f"run {run_id} finished")


def test_an_agent_searches_a_knowledge_base_calls_a_saved_workflow_and_shows_each_step(
        stack: Stack, llm: ChatServer, monkeypatch: pytest.MonkeyPatch):
    assert stack.api("POST", BASES, json={"name": "shop", "chunking": {"length": 12, "overlap": 0}}).status_code == 201
    added = stack.api("POST", f"{BASES}/shop/documents", json={"texts": [
        {"name": "vault", "text": "The back office vault code is 4242."},
        {"name": "hours", "text": "The shop opens at nine on weekdays."}]})
    assert added.status_code == 201, added.text
    wait_until(lambda: stack.api("GET", f"{BASES}/shop").json()["status"] == "ready", timeout=180, interval=0.5,
               message="the knowledge base indexed")
    stack.create("prices", note_workflow("{{ item }} costs 12 euros."))
    tool = stack.api("GET", "/api/v1/workflows/prices/versions/1/tool",
                     params={"name": "price_list", "description": "Prices of the shop's items."})
    assert tool.status_code == 200, tool.text
    bad_name = stack.api("GET", "/api/v1/workflows/prices/versions/1/tool", params={"name": "no spaces", "description": ""})
    assert bad_name.status_code == 422 and "name" in bad_name.text

    stack.create("shop-agent", agent_chat(llm.base_url, [SEARCH, tool.json()]))
    run = finished(stack, stack.start_run("shop-agent", {"question": "What is the vault code, and tea's price?"})["id"])
    assert run["state"] == "succeeded", run["error"]
    answer = run["outputs"]["answer"]["text"]
    assert "4242" in answer and "tea costs 12 euros." in answer

    rows = {row["node"]: row for row in run["node_runs"]}
    assert [name for name in rows if name.startswith("agent · ")] == [
        "agent · step 1 · model", "agent · step 1 · tool search_kb", "agent · step 2 · model",
        "agent · step 2 · tool price_list", "agent · step 3 · model"]
    search = rows["agent · step 1 · tool search_kb"]
    assert search["state"] == "done" and search["output_preview"]["arguments"] == {"query_text": "vault code"}
    assert "4242" in json.dumps(search["output_preview"]["result"])
    assert rows["agent · step 2 · tool price_list"]["output_preview"]["arguments"] == {"item": "tea"}
    whole = stack.api("GET", f"/api/v1/runs/{run['id']}/nodes/{search['id']}/output")   # the result, downloadable
    assert whole.status_code == 200 and "attachment" in whole.headers["content-disposition"]
    assert "The back office vault code is 4242." in json.dumps(whole.json()) and search["output_chars"] == len(whole.text)
    model_row = rows["agent · step 1 · model"]
    assert stack.api("GET", f"/api/v1/runs/{run['id']}/nodes/{model_row['id']}/output").status_code == 404
    assert rows["agent"]["state"] == "done" and {"prompt", "agent"} <= set(rows)

    # The export is plain Haystack: the knowledge base the tool reads became its Milvus store, and it answers.
    exported = stack.api("GET", "/api/v1/workflows/shop-agent/export")
    assert exported.status_code == 200 and "knowledge_base" not in exported.text
    monkeypatch.setenv("TEST_LLM_KEY", "k")
    loaded = Pipeline.loads(exported.text, allowed_modules=["milvus_haystack"])
    plain = loaded.run({"prompt": {"question": "What is the vault code, and tea's price?"}})
    assert "4242" in plain["agent"]["last_message"].text and "tea costs 12 euros." in plain["agent"]["last_message"].text

    # The saved workflow cannot call the agent that calls it.
    as_tool = stack.api("GET", "/api/v1/workflows/shop-agent/versions/1/tool",
                        params={"name": "ask_shop", "description": "Asks the shop agent."}).json()
    looped = stack.api("POST", "/api/v1/workflows/prices/versions",
                       json={"spec": agent_chat(llm.base_url, [as_tool])})
    assert looped.status_code == 422 and "Workflow 'prices' calls itself" in looped.text, looped.text


def test_a_failing_tool_is_shown_to_the_model_and_max_steps_ends_the_run(stack: Stack, llm: ChatServer):
    if "prices" not in {w["name"] for w in stack.api("GET", "/api/v1/workflows").json()}:
        stack.create("prices", note_workflow("{{ item }} costs 12 euros."))
    tool = stack.api("GET", "/api/v1/workflows/prices/versions/1/tool",
                     params={"name": "price_list", "description": "Prices."}).json()
    stack.create("looping-agent", agent_chat(llm.base_url, [tool], max_steps=2))
    run = finished(stack, stack.start_run("looping-agent", {"question": "loop please"})["id"])
    assert run["state"] == "failed"
    assert "Agent 'agent' stopped after 2 steps without an answer" in run["error"]
    rows = {row["node"]: row for row in run["node_runs"]}
    failed = rows["agent · step 2 · tool price_list"]
    assert failed["state"] == "failed" and "price_list" in failed["error"]
    told = [m for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
    assert told and "Failed to invoke Tool `price_list`" in told[-1]["content"]


def test_an_agent_app_streams_its_answer_through_the_openai_api(stack: Stack, llm: ChatServer):
    from tests.support.chat import client_for, new_key

    if "prices" not in {w["name"] for w in stack.api("GET", "/api/v1/workflows").json()}:
        stack.create("prices", note_workflow("{{ item }} costs 12 euros."))
    tool = stack.api("GET", "/api/v1/workflows/prices/versions/1/tool",
                     params={"name": "price_list", "description": "Prices."}).json()
    stack.create("price-agent", agent_chat(llm.base_url, [tool]))
    made = stack.api("POST", "/api/v1/publications", json={"workflow": "price-agent", "slug": "prices-bot",
                                                             "message": "question", "reply": "answer", "check": False})
    assert made.status_code == 201, made.text
    client = client_for(stack, new_key(stack, app="prices-bot"))
    chunks = [chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model="prices-bot", stream=True, messages=[{"role": "user", "content": "What does tea cost?"}])
              if chunk.choices]
    streamed = "".join(chunks)
    assert "tea costs 12 euros." in streamed and len([c for c in chunks if c]) > 3    # word by word, not at once
    assert "Tool 'search_kb' not found" in streamed     # the script asked for a tool this agent lacks: told, went on
