"""An Agent node in the editor, in Debian's Chromium against real processes (`stackyard web` and a worker on the
embedded broker), thinking with the in-test OpenAI-compatible server and calling the in-test MCP server.

The user story: drop an Agent on the canvas, give it tools in the inspector (a saved workflow, whose name the API
refuses first; an MCP server; an MCP server validation refuses, its problem shown on its row; a node with the one
input the model may fill), see each tool as a chip under the agent's tools port (a palette item dropped on that port
opens the "Node as tool" dialog; an edge dropped on it is refused), save, run, and follow the agent's model and tool
calls under its entry in the run panel. Screenshots in test-artifacts/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.editor_browser import (
    center,
    click_node,
    connect,
    drag_from_palette,
    edge,
    node,
    port,
    shot,
    wait_ready,
)
from tests.support.mcp_server import McpServer
from tests.support.openai_server import ChatServer, ToolCall, tool_steps
from tests.support.specs import REMOTE_LLM_ENV, agent_chat, note_workflow, remote_chat
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

AGENT = "haystack.components.agents.agent.Agent"
BM25 = "haystack.components.retrievers.in_memory.bm25_retriever.InMemoryBM25Retriever"
PIPELINE_TOOL = "haystack.tools.pipeline_tool.PipelineTool"
MCP_TOOLSET = "haystack_integrations.tools.mcp.mcp_toolset.MCPToolset"


# The model: the price from the saved workflow, then the stock from the MCP server, then an answer.
script = tool_steps([ToolCall("price_list", {"item": "tea"})], [ToolCall("stock", {"item": "tea"})])


@pytest.fixture(scope="module")
def llm() -> Iterator[ChatServer]:
    with ChatServer(reply=script) as server:
        yield server


@pytest.fixture(scope="module")
def mcp() -> Iterator[McpServer]:
    with McpServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mcp: McpServer) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("agent-editor")
    data = root / "data"
    stack = Stack(root=root, database_url=f"sqlite:///{data / 'stackyard.db'}", broker_url=f"sqla+sqlite:///{data / 'broker.db'}",
                  extra_env={**REMOTE_LLM_ENV, "TEST_LLM_KEY": "k", "STACKYARD_MCP_SERVERS": mcp.url,
                             "STACKYARD_EDITOR_WARM_UP": "true"})
    try:
        stack.start_web()
        stack.start_worker(queues="cpu,gpu", name="agent-editor-worker")
        yield stack
    finally:
        stack.stop()


def canvas_point(page: Page, fx: float, fy: float) -> tuple[float, float]:
    box = page.locator(".sy-viewport").bounding_box()
    return box["x"] + box["width"] * fx, box["y"] + box["height"] * fy


def agent_tools(page: Page) -> list[dict]:
    """The agent's tools as the editor holds them (what validate, drafts and save send)."""
    return page.evaluate("() => window.Stackyard.editor.graph.toSpec()")["components"]["agent"]["init_parameters"]["tools"]


def drag(page: Page, start: tuple[float, float], end: tuple[float, float], *, release: bool = True) -> None:
    """A pointer drag, as a user makes it (what the palette and the ports listen to)."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + 40, start[1], steps=3)
    page.mouse.move(*end, steps=8)
    if release:
        page.mouse.up()


def test_an_agent_gets_its_tools_in_the_inspector_and_its_steps_show_in_the_run_panel(
        stack: Stack, llm: ChatServer, mcp: McpServer, page: Page):
    stack.create("prices", note_workflow("{{ item }} costs 12 euros."))
    question_only = agent_chat(llm.base_url, [])          # the chat prompt; the agent comes from the palette
    del question_only["components"]["agent"]
    question_only.update(connections=[], outputs={})
    created = stack.create("shop-agent", question_only)
    page.goto(f"{stack.base_url}/?workflow={created['id']}")
    wait_ready(page)
    expect(node(page, "prompt")).to_be_visible()

    # An Agent from the palette, fed the chat prompt; it thinks with the in-test server and answers as "answer".
    drag_from_palette(page, AGENT, *canvas_point(page, 0.78, 0.3))
    expect(node(page, "agent")).to_be_visible()
    page.locator('[data-action="layout"]').click()             # apart, whatever the drop covered
    page.locator('[data-action="fit"]').click()
    connect(page, "prompt.prompt", "agent.messages")
    expect(edge(page, "prompt.prompt", "agent.messages")).to_have_count(1)
    page.locator('[data-action="layout"]').click()
    click_node(page, "agent")
    expect(page.locator(".sy-agent-streaming")).to_contain_text(
        "Streams the final answer only with a local model (it cannot stream and call tools at once)")
    generator = page.locator('.sy-field[data-param="chat_generator"] textarea')
    generator.fill(json.dumps(remote_chat(llm.base_url)["components"]["llm"]))
    generator.blur()
    page.get_by_label("Workflow output for agent.last_message").fill("answer")
    page.keyboard.press("Enter")
    tools = page.locator('[data-section="tools"]')
    expect(tools).to_contain_text("No tools yet")
    expect(page.locator('.sy-field[data-param="tools"]')).to_have_count(0)   # no raw JSON field for them
    expect(page.locator('.sy-field[data-param="hooks"]')).to_have_count(0)   # Stackyard's to set

    # A saved workflow as a tool: the API makes it, and its refusal of a name shows in the dialog.
    tools.locator('[data-action="add-workflow-tool"]').click()
    dialog = page.locator(".sy-tool-modal")
    dialog.get_by_label("Workflow", exact=True).select_option(label="prices")
    expect(dialog.get_by_label("Version", exact=True).locator("option")).to_have_count(1)
    expect(dialog).to_contain_text("Arguments (its inputs): item")
    expect(dialog.get_by_label("Tool name")).to_have_value("prices")
    expect(dialog.get_by_label("Workflow", exact=True).locator("option", has_text="shop-agent (this workflow)")).to_be_disabled()
    dialog.get_by_label("Tool name").fill("price list")
    dialog.get_by_label("Tool description").fill("Prices of the shop's items.")
    dialog.locator('[data-action="add-tool"]').click()
    expect(dialog.locator(".sy-field-error")).to_contain_text("name")
    expect(dialog).to_be_visible()
    shot(page, "agent-00-workflow-tool")
    dialog.get_by_label("Tool name").fill("price_list")
    dialog.locator('[data-action="add-tool"]').click()
    expect(dialog).to_have_count(0)
    row = tools.locator('.sy-tool-row[data-kind="workflow"]')
    expect(row.locator(".sy-tool-kind")).to_have_text("workflow v1")
    expect(row).to_contain_text("price_list")
    expect(row).to_contain_text("Prices of the shop's items.")
    expect(row).to_contain_text("from “prices”")
    chips = node(page, "agent").locator(".sy-tool-chip")          # each tool hangs under the agent's tools port
    expect(chips).to_have_count(1)
    expect(chips.first).to_have_attribute("data-kind", "workflow")
    expect(chips.first).to_have_text("price_list")

    # An MCP server with one of its tools, and one the operator does not allow: validation pins that on its row.
    for url, names in ((mcp.url, "stock"), ("http://127.0.0.1:1/mcp", "")):
        tools.locator('[data-action="add-mcp-tool"]').click()
        dialog.get_by_label("MCP server URL").fill(url)
        dialog.get_by_label("Tool names").fill(names)
        dialog.locator('[data-action="add-tool"]').click()
        expect(dialog).to_have_count(0)
    expect(tools.locator('.sy-tool-row[data-kind="mcp"]')).to_have_count(2)
    expect(tools.locator('.sy-tool-row[data-tool="1"]')).to_contain_text("Offers the model: stock")
    expect(chips.locator(".sy-tool-chip-name")).to_have_text(["price_list", f"127.0.0.1:{mcp.port}", "127.0.0.1:1"])
    page.locator('[data-action="validate"]').click()
    expect(page.locator('.sy-issue[data-node="agent"]')).to_contain_text("STACKYARD_MCP_SERVERS")
    page.locator('.sy-tabs [data-tab="inspect"]').click()
    expect(tools.locator('.sy-tool-row[data-tool="2"] .sy-field-error')).to_contain_text("is not one an operator allows")
    expect(tools.locator('.sy-tool-row[data-tool="0"] .sy-field-error')).to_have_count(0)
    tools_port = node(page, "agent").locator(".sy-tools-port")
    expect(tools_port).to_have_class(re.compile("sy-port-issue"))   # on the canvas: the tools port's problem,
    expect(node(page, "agent").locator('.sy-port[data-port="tools"]')).to_have_count(0)   # not the data input's
    shot(page, "agent-01-tools")
    tools.get_by_role("button", name="Remove tool http://127.0.0.1:1/mcp").click()
    expect(tools.locator(".sy-field-error")).to_have_count(0)       # pinned by index: not to the wrong tool now
    expect(tools).to_contain_text("Validate to check them again")
    expect(chips).to_have_count(2)
    expect(page.locator(".sy-node")).to_have_count(2)               # chips are not nodes

    # A chip is the agent's: clicking it selects the agent, and its Tools section shows.
    page.locator('[data-action="fit"]').click()                      # the chips count in the agent's extent
    page.locator(".sy-viewport").focus()
    page.keyboard.press("Escape")
    expect(tools).to_have_count(0)
    chips.nth(1).click()
    expect(page.locator('.sy-node.sy-selected[data-name="agent"]')).to_have_count(1)
    expect(tools).to_be_visible()

    # Tools are not data: an edge dropped on the tools port is refused the canvas's usual way.
    expect(tools_port).to_have_text("tools")
    drag(page, center(port(page, "prompt", "prompt", "out")), center(tools_port))
    refusal = page.locator(".sy-toast.sy-refusal")
    expect(refusal).to_contain_text("tools are not data")
    expect(page.locator(".sy-edge")).to_have_count(1)
    refusal.locator(".sy-toast-x").click()

    # A palette item dropped on the tools port opens "Node as tool" with that node picked, and adds no node.
    item = page.locator(f'.sy-pal-item[data-type="{BM25}"]')
    item.scroll_into_view_if_needed()
    drag(page, center(item), center(tools_port), release=False)
    expect(node(page, "agent").locator(".sy-agent-tools.sy-tool-target")).to_have_count(1)
    expect(page.locator(".sy-ghost")).to_have_text("BM25 retriever → a tool of agent")
    shot(page, "agent-01b-drop-on-tools-port")
    page.mouse.up()
    expect(dialog.locator(".sy-modal-head")).to_contain_text("Node as tool")
    expect(dialog.get_by_label("Node type")).to_have_value(BM25)
    expect(dialog.get_by_label("Tool name")).to_have_value("bm25_retriever")
    expect(dialog.get_by_label("The model fills query")).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(page.locator(".sy-node")).to_have_count(2)
    expect(chips).to_have_count(2)

    # A node as a tool, with only the input the model may fill; then removed again (undoable like any edit).
    tools.locator('[data-action="add-node-tool"]').click()
    dialog.get_by_label("Node type").select_option(BM25)
    dialog.get_by_label("Tool name").fill("search_docs")
    dialog.get_by_label("The model fills query").check()
    dialog.locator('[data-action="add-tool"]').click()
    expect(tools.locator('.sy-tool-row[data-kind="node"]')).to_contain_text("The model fills: query;")
    added = agent_tools(page)[2]
    assert added["data"]["component"]["type"] == BM25 and added["data"]["name"] == "search_docs"
    assert added["data"]["parameters"] == {"type": "object", "required": ["query"],
                                           "properties": {"query": {"type": "string", "description": "query (str)"}}}
    expect(chips).to_have_count(3)
    expect(chips.nth(2)).to_have_attribute("data-kind", "node")
    expect(chips.nth(2)).to_have_text("search_docs")
    shot(page, "agent-01c-tool-chips")
    tools.get_by_role("button", name="Remove tool search_docs").click()
    expect(tools.locator(".sy-tool-row")).to_have_count(2)
    expect(chips).to_have_count(2)
    page.keyboard.press("Control+z")
    expect(tools.locator(".sy-tool-row")).to_have_count(3)
    expect(chips.nth(2)).to_have_text("search_docs")
    page.keyboard.press("Control+Shift+z")
    expect(tools.locator(".sy-tool-row")).to_have_count(2)
    expect(chips).to_have_count(2)

    # The tools are the node's parameter: in the editor's spec, and in the version saved.
    listed = agent_tools(page)
    assert [t["type"] for t in listed] == [PIPELINE_TOOL, MCP_TOOLSET]
    assert listed[0]["data"]["name"] == "price_list" and listed[0]["data"]["input_mapping"] == {"item": ["p.item"]}
    assert listed[1]["data"]["server_info"]["url"] == mcp.url and listed[1]["data"]["tool_names"] == ["stock"]
    page.keyboard.press("Control+s")
    page.get_by_label("Version note").fill("agent with tools")
    page.keyboard.press("Enter")
    expect(page.locator(".sy-version-label")).to_have_text("v2")
    saved = stack.api("GET", "/api/v1/workflows/shop-agent/versions/2").json()["spec"]
    assert saved["components"]["agent"]["init_parameters"]["tools"] == listed

    # Run it: the agent's model and tool calls list under its entry, in order; the canvas and the progress count
    # nodes only.
    page.locator('[data-action="open-run"]').click()
    page.locator('.sy-field[data-input="question"] textarea').fill("How much is tea, and is there any?")
    page.locator('[data-action="run"]').click()
    expect(node(page, "agent").locator('.sy-node-status[data-state="done"]')).to_be_visible(timeout=120_000)
    expect(page.locator(".sy-progress")).to_have_attribute("data-state", "succeeded", timeout=30_000)
    steps = page.locator('.sy-run-steps[data-agent="agent"] .sy-run-step')
    expect(steps).to_have_count(5)
    assert steps.locator(".sy-run-node-name").all_inner_texts() == [
        "step 1 · model", "step 1 · tool price_list", "step 2 · model", "step 2 · tool stock", "step 3 · model"]
    expect(steps.locator(".sy-state-dot[data-state='done']")).to_have_count(5)
    expect(page.locator(".sy-run-status")).to_contain_text("2/2 nodes")
    expect(page.locator(".sy-node")).to_have_count(2)
    expect(page.locator('.sy-output[data-output="answer"]')).to_contain_text("tea costs 12 euros.")
    expect(page.locator('.sy-output[data-output="answer"]')).to_contain_text("tea: 7 in stock")
    shot(page, "agent-02-steps")
    page.locator('.sy-run-step[data-step="agent · step 1 · tool price_list"]').get_by_role("button", name="output").click()
    output = page.locator(".sy-output-modal")
    expect(output.locator('[data-output="arguments"]')).to_contain_text('"item": "tea"')
    expect(output.locator('[data-output="result"]')).to_contain_text("tea costs 12 euros.")
    with page.expect_download() as download:                        # the whole result, as the tool returned it
        output.locator(".sy-download-output").click()
    assert "tea costs 12 euros." in Path(download.value.path()).read_text()
    shot(page, "agent-03-tool-output")
    page.keyboard.press("Escape")
    page.locator('.sy-run-step[data-step="agent · step 3 · model"]').get_by_role("button", name="output").click()
    expect(output.locator('[data-output="replies"]')).to_contain_text("From the tools:")
