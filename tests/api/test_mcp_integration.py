"""Published apps as MCP tools, through the official `mcp` client against a real web server and worker (Redis,
PostgreSQL): a key lists exactly the apps it may use, a call runs the app as a normal run and answers with its
reply, and a bad key, an app out of the key's scope or a bad argument are refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.support.chat import heard, new_key
from tests.support.openai_server import ChatServer
from tests.support.specs import remote_chat
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, cold_model: Path) -> Iterator[Stack]:
    with ChatServer(reply=heard) as llm:
        gen = process_stack("redis", tmp_path_factory.mktemp("mcp"), tiny_model, cold_model)
        stack = next(gen)
        stack.extra_env["TEST_LLM_KEY"] = "k"
        stack.start_web()
        worker = stack.start_worker(queues="cpu,gpu", name="worker-mcp")
        spec = remote_chat(llm.base_url)
        spec["metadata"] = {"title": "Support", "description": "Answers questions about the shop."}
        stack.create("support-chat", spec)
        for slug in ("support", "sales"):
            made = stack.api("POST", "/api/v1/publications", json={"workflow": "support-chat", "slug": slug,
                                                                     "message": "question", "reply": "answer",
                                                                     "check": False})
            assert made.status_code == 201, made.text
        yield stack
        stack.discard(worker)
        for _ in gen:
            pass


def session_with(stack: Stack, key: str, work) -> Any:
    async def go() -> Any:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            async with streamable_http_client(f"{stack.base_url}/v1/mcp/", http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await work(session)

    return asyncio.run(go())


def test_a_key_lists_the_apps_it_may_use_and_runs_one(stack: Stack):
    everything, support_only = new_key(stack, name="all"), new_key(stack, name="support", app="support")

    async def listing(session: ClientSession) -> dict[str, Any]:
        return {tool.name: tool for tool in (await session.list_tools()).tools}

    tools = session_with(stack, everything, listing)
    assert set(tools) == {"support", "sales"}
    assert tools["support"].description == "Answers questions about the shop."
    assert tools["support"].input_schema["required"] == ["question"]
    assert set(session_with(stack, support_only, listing)) == {"support"}

    async def ask(session: ClientSession) -> Any:
        return await session.call_tool("support", {"question": "Where do I park?"})

    result = session_with(stack, support_only, ask)
    assert not result.is_error and result.content[0].text == "heard: Question: Where do I park?"
    run = stack.run(result.structured_content["run_id"])
    assert run["state"] == "succeeded" and {row["node"] for row in run["node_runs"]} == {"prompt", "llm"}

    async def out_of_scope(session: ClientSession) -> Any:
        return await session.call_tool("sales", {"question": "Discount?"})

    refused = session_with(stack, support_only, out_of_scope)
    assert refused.is_error and "is scoped to app 'support' and cannot call 'sales'" in refused.content[0].text

    async def bad_argument(session: ClientSession) -> Any:
        return await session.call_tool("support", {"question": "hi", "nonsense": 1})

    wrong = session_with(stack, everything, bad_argument)
    assert wrong.is_error and "nonsense" in wrong.content[0].text

    async def deep(session: ClientSession) -> Any:
        nested: Any = "hi"
        for _ in range(100):
            nested = [nested]
        return await session.call_tool("support", {"question": nested})

    too_deep = session_with(stack, everything, deep)
    assert too_deep.is_error and "nest more than 64 levels deep" in too_deep.content[0].text

    stranger = httpx.post(f"{stack.base_url}/v1/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                          headers={"Authorization": "Bearer sk-nobody", "Accept": "application/json, text/event-stream"})
    assert stranger.status_code == 401 and "Invalid API key" in stranger.text
