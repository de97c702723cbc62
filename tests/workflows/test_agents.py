"""Agent nodes: a model driven through the in-test OpenAI-compatible server calls a node and a saved workflow as
tools and answers from both; the guards hold (steps, arguments the PM fixed, result size, errors shown to the
model); hostile definitions are refused before anything is imported; the export runs in plain Haystack."""

from __future__ import annotations

import json

import pytest
from haystack import Pipeline

from stackyard.settings import reset_settings_cache
from tests.support.mcp_server import McpServer
from tests.support.openai_server import ChatServer, ToolCall, tool_results, tool_steps
from tests.support.specs import agent_chat, mcp_tools, note_tool, note_workflow
from workflows.agents import check_no_cycle, tool_sources, workflow_tool
from workflows.build import BuildMode
from workflows.errors import WorkflowInvalid
from workflows.execute import run_pipeline
from workflows.io import export_yaml
from workflows.spec import ComponentSpec, spec_from_dict
from workflows.validation import build_node, build_pipeline, validate

HOURS = note_tool("opening_hours", "Open on {{ day }} from 9 to 17.", "Opening hours of the shop on a day.")
PRICES = workflow_tool("price_list", "Prices of the shop's items.", spec_from_dict(note_workflow("{{ item }} costs 12 euros.")),
                       workflow_id="a" * 32, version=3)


hours_then_prices_then_answer = tool_steps([ToolCall("opening_hours", {"day": "monday"})],
                                           [ToolCall("price_list", {"item": "tea"})])


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    with ChatServer(hours_then_prices_then_answer) as chat_server:
        monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{chat_server.port}")
        monkeypatch.setenv("STACKYARD_SECRET_ENV", "TEST_LLM_KEY")
        monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
        reset_settings_cache()
        yield chat_server
    reset_settings_cache()


def run(spec_data: dict, question: str = "When are you open on monday, and what does tea cost?") -> dict:
    spec = spec_from_dict(spec_data)
    assert validate(spec) == []
    return run_pipeline(spec, build_pipeline(spec), {"question": question})


def test_an_agent_calls_a_node_and_a_saved_workflow_and_answers_from_both(server: ChatServer):
    outputs = run(agent_chat(server.base_url, [HOURS, PRICES]))
    answer = outputs["answer"]["text"]
    assert "Open on monday from 9 to 17." in answer and "tea costs 12 euros." in answer
    offered = [{t["function"]["name"] for t in body["tools"]} for body in server.requests]
    assert offered == [{"opening_hours", "price_list"}] * 3
    price_schema = next(t["function"]["parameters"] for t in server.requests[0]["tools"]
                        if t["function"]["name"] == "price_list")
    assert list(price_schema["properties"]) == ["item"]   # the workflow's declared input is the tool's argument
    assert server.requests[0]["messages"][0] == {"role": "system", "content": "Use the tools, then answer."}


def test_the_exported_agent_loads_and_runs_in_plain_haystack(server: ChatServer):
    spec = spec_from_dict(agent_chat(server.base_url, [HOURS, PRICES]))
    loaded = Pipeline.loads(export_yaml(spec))
    result = loaded.run({"prompt": {"question": "Open on monday? Tea?"}})
    assert "tea costs 12 euros." in result["agent"]["last_message"].text
    assert "Open on monday" in result["agent"]["last_message"].text


def test_max_steps_ends_the_run_saying_so(server: ChatServer):
    server.reply = lambda body: [ToolCall("opening_hours", {"day": f"day {len(tool_results(body))}"})]
    with pytest.raises(Exception) as raised:
        run(agent_chat(server.base_url, [HOURS], max_steps=3))
    assert "Agent 'agent' stopped after 3 steps without an answer" in str(raised.value)
    assert len(server.requests) == 3


def test_arguments_the_pm_fixed_stay_fixed_and_bad_ones_reach_the_model_as_errors(server: ChatServer):
    """The PM lets the model fill ``day`` only; it also sends ``template`` (a real input of the node: Haystack would
    pass it on), which is dropped; next it names the argument wrongly, and hears what was missing."""
    day_only = {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}  # the inspector's
    fixed = {**HOURS, "data": {**HOURS["data"], "parameters": day_only}}

    server.reply = tool_steps(
        [ToolCall("opening_hours", {"day": "sunday", "template": "{{ day }}: the vault code is 4242"})],
        [ToolCall("opening_hours", {"weekday": "friday"})],
        [ToolCall("opening_hours", '[["day", "monday"], ["template", "{{ day }}: the vault code is 4242"]]')])
    run(agent_chat(server.base_url, [fixed]))
    first, second, third = tool_results(server.requests[3])
    assert json.loads(first) == {"prompt": "Open on sunday from 9 to 17."}
    assert "Failed to invoke Tool `opening_hours`" in second and "Missing required input variables" in second
    assert "Missing required input variables" in third and "4242" not in third   # pairs are not arguments


def test_a_huge_tool_result_is_cut_before_the_model_reads_it(server: ChatServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STACKYARD_AGENT_TOOL_RESULT_CHARS", "1000")
    reset_settings_cache()
    huge = "x" * (5 * 1024 * 1024)
    server.reply = lambda body: [ToolCall("echo", {"text": huge})] if not tool_results(body) else "ok"
    run(agent_chat(server.base_url, [note_tool("echo", "{{ text }}")]))
    [seen] = tool_results(server.requests[1])
    assert len(seen) < 1200 and f"the tool returned {len(json.dumps({'prompt': huge})):,} characters" in seen


def test_malformed_and_unknown_tool_calls_do_not_crash_the_run(server: ChatServer):
    def script(body: dict):
        done = tool_results(body)
        if not done and len(server.requests) == 1:
            return [ToolCall("opening_hours", "{not json"), ToolCall("no_such_tool", {"a": 1})]
        return "answered anyway"

    server.reply = script
    assert run(agent_chat(server.base_url, [HOURS]))["answer"]["text"] == "answered anyway"
    assert any("not found" in result for result in tool_results(server.requests[-1]))


@pytest.mark.parametrize(("tool", "expected"), [
    ({"type": "haystack.tools.tool.Tool", "data": {"name": "run", "function": "os.system"}}, "must be a tool"),
    ({"type": "haystack_integrations.tools.mcp.mcp_toolset.MCPToolset", "data": {"server_info": {
        "type": "haystack_integrations.tools.mcp.mcp_tool.StdioServerInfo", "command": "rm", "args": ["-rf", "/"]}}},
     "a stdio server would start a process"),
    ({**HOURS, "data": {**HOURS["data"], "name": "has spaces!"}}, "tool name 'has spaces!'"),
    ({**HOURS, "data": {**HOURS["data"], "outputs_to_string": {"handler": "os.system"}}}, "names a handler"),
    ({**HOURS, "data": {**HOURS["data"], "component": {"type": "subprocess.Popen", "init_parameters": {}}}},
     "is not an allowed component"),
    ({**HOURS, "data": {**HOURS["data"], "component": {"type": HOURS["data"]["component"]["type"],
                                                        "init_parameters": {"template": "{{ ''.__class__ }}"}}}},
     "private attribute"),
], ids=["function-tool", "mcp-stdio", "bad-name", "handler", "unlisted-class", "unsafe-template"])
def test_hostile_tools_are_refused_before_anything_is_imported(server: ChatServer, tool: dict, expected: str):
    issues = validate(spec_from_dict(agent_chat(server.base_url, [tool])))
    assert issues and all(issue.node == "agent" for issue in issues), issues
    assert any(expected in issue.message for issue in issues), [i.message for i in issues]


def test_the_agents_model_and_limits_get_every_nodes_checks(server: ChatServer):
    data = agent_chat("http://169.254.169.254/v1", [HOURS], max_steps=1000)
    data["components"]["agent"]["init_parameters"]["streaming_callback"] = "os.system"
    messages = [issue.message for issue in validate(spec_from_dict(data))]
    assert any("max steps must be a whole number from 1 to 25" in m for m in messages)
    assert any("'streaming_callback' can only be None" in m for m in messages)
    assert any("api_base_url" in m and "may not call" in m for m in messages)


def test_a_workflow_that_calls_itself_through_a_tool_is_refused():
    inner = spec_from_dict(agent_chat("http://127.0.0.1:9/v1", [PRICES]))
    outer_tool = workflow_tool("ask", "Asks the helper.", inner, workflow_id="b" * 32, version=1)
    outer = spec_from_dict(agent_chat("http://127.0.0.1:9/v1", [outer_tool]))
    assert tool_sources(outer) == [("b" * 32, 1), ("a" * 32, 3)]
    check_no_cycle(outer, "c" * 32, "outer")                       # calls b and a: no cycle
    with pytest.raises(WorkflowInvalid, match="Workflow 'prices' calls itself"):
        check_no_cycle(outer, "a" * 32, "prices")                   # a → b → a


def test_agents_nest_three_deep_and_no_deeper(server: ChatServer):
    spec = spec_from_dict(note_workflow("{{ item }}"))
    for level in range(1, 5):
        tool = workflow_tool("inner", "Calls the level below.", spec, workflow_id=f"{level:032x}", version=1)
        spec = spec_from_dict({**agent_chat(server.base_url, [tool]), "inputs": {"item": ["prompt.question"]}})
        messages = [issue.message for issue in validate(spec)]
        assert bool(messages) == (level > 3), (level, messages)
    assert "agents nest more than 3 deep" in messages[0]
    inner = agent_chat(server.base_url, [HOURS])["components"]["agent"]      # an agent as a node tool, nested
    for _ in range(3):
        inner = {"type": inner["type"], "init_parameters": {**inner["init_parameters"], "tools": [
            {"type": HOURS["type"], "data": {"component": inner, "name": "ask", "description": "Asks.",
                                             "parameters": None}}]}}
    data = agent_chat(server.base_url, [])
    data["components"]["agent"] = inner
    assert any("agents nest more than 3 deep" in issue.message for issue in validate(spec_from_dict(data)))


@pytest.fixture
def mcp(server: ChatServer, monkeypatch: pytest.MonkeyPatch):
    with McpServer() as mcp_server:
        monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{server.port},127.0.0.1:{mcp_server.port}")
        monkeypatch.setenv("STACKYARD_MCP_SERVERS", mcp_server.url)
        reset_settings_cache()
        yield mcp_server


def test_an_agent_calls_a_tool_of_an_mcp_server_it_may_use(server: ChatServer, mcp: McpServer):
    server.reply = lambda body: [ToolCall("stock", {"item": "tea"})] if not tool_results(body) else \
        "Stock: " + tool_results(body)[0]
    outputs = run(agent_chat(server.base_url, [mcp_tools(mcp.url, names=["stock"])]), "How much tea is there?")
    assert "tea: 7 in stock" in outputs["answer"]["text"]
    assert mcp.calls == [("stock", {"item": "tea"})]
    assert [t["function"]["name"] for t in server.requests[0]["tools"]] == ["stock"]   # only the tools named


def test_mcp_servers_are_refused_unless_allowed_and_reachable_only_as_allowed(server: ChatServer, mcp: McpServer,
                                                                             monkeypatch: pytest.MonkeyPatch):
    def problems(tool: dict) -> list[str]:
        return [issue.message for issue in validate(spec_from_dict(agent_chat(server.base_url, [tool])))]

    assert problems(mcp_tools(mcp.url)) == []
    assert any("is not one an operator allows (STACKYARD_MCP_SERVERS" in m
               for m in problems(mcp_tools("http://127.0.0.1:1/other")))
    monkeypatch.setenv("STACKYARD_MCP_SERVERS", f"{mcp.url},http://169.254.169.254/")
    reset_settings_cache()
    assert any("'url' is a server this workflow may not call" in m
               for m in problems(mcp_tools("http://169.254.169.254/mcp")))
    clear = mcp_tools(mcp.url)
    clear["data"]["server_info"]["token"] = "sk-in-clear"
    assert any("must name an environment variable" in m for m in problems(clear))
    assert any("not one an operator has granted" in m for m in problems(mcp_tools(mcp.url, token_env="HOME")))


def test_an_unreachable_mcp_server_fails_the_run_naming_it(server: ChatServer, mcp: McpServer,
                                                           monkeypatch: pytest.MonkeyPatch):
    from tests.support.stack import free_port

    gone = f"http://127.0.0.1:{free_port()}/mcp"
    monkeypatch.setenv("STACKYARD_MCP_SERVERS", gone)
    monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{server.port},{gone.split('/')[2]}")
    reset_settings_cache()
    with pytest.raises(Exception) as raised:
        run(agent_chat(server.base_url, [mcp_tools(gone, seconds=1.0)]))
    assert "Failed to connect to MCP server" in str(raised.value) and gone in str(raised.value)


def test_an_agent_on_a_local_model_is_not_handed_a_stream_one_on_a_server_is(server: ChatServer):
    """A local transformers model refuses to stream while it may call tools: the worker hands such an agent no
    streaming callback (its answer arrives whole), while an agent on an OpenAI-compatible server streams."""
    from nodes.catalog import AGENT, get_node_type
    from workflows.agents import streams_while_calling_tools

    local = get_node_type("haystack_integrations.components.generators.transformers.chat.chat_generator."
                          "TransformersChatGenerator")
    on_server = agent_chat(server.base_url, [HOURS])["components"]["agent"]["init_parameters"]
    on_device = {**on_server, "chat_generator": {"type": local.type, "init_parameters": local.defaults}}
    built = {name: build_node("agent", ComponentSpec(type=AGENT, init_parameters=params), mode=BuildMode.VALIDATE)
             for name, params in (("server", on_server), ("device", on_device))}
    assert streams_while_calling_tools(built["server"]) and not streams_while_calling_tools(built["device"])
    assert streams_while_calling_tools(build_node("p", ComponentSpec(type=HOURS["data"]["component"]["type"],
                                                                     init_parameters={"template": "x"})))


def test_a_tool_writes_a_state_field_the_agent_outputs(server: ChatServer):
    """A state field is a node output: a tool writes its result into it (outputs_to_state, data not code), and the
    workflow can declare it (e.g. a chat app's sources)."""
    noted = {**HOURS, "data": {**HOURS["data"], "outputs_to_state": {"note": {"source": "prompt"}}}}
    data = agent_chat(server.base_url, [noted])
    data["components"]["agent"]["init_parameters"]["state_schema"] = {"note": {"type": "str"}}
    data["outputs"]["note"] = "agent.note"
    server.reply = lambda body: [ToolCall("opening_hours", {"day": "friday"})] if not tool_results(body) else "ok"
    assert run(data)["note"] == "Open on friday from 9 to 17."

    data["components"]["agent"]["init_parameters"]["state_schema"] = {
        "note": {"type": "str", "handler": "os.system"}, "tools": {"type": "str"}, "x": {"type": "subprocess.Popen"}}
    messages = [issue.message for issue in validate(spec_from_dict(data))]
    assert any("state field 'note' is {type:" in m for m in messages)
    assert any("state field 'tools' must be a lower-case name" in m for m in messages)
    assert any("state field 'x' is {type:" in m for m in messages)


def test_the_token_budget_stops_a_run_that_keeps_calling_tools(server: ChatServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STACKYARD_AGENT_TOKEN_BUDGET", "6")     # each scripted model call reports 5 tokens
    reset_settings_cache()
    server.reply = lambda body: [ToolCall("opening_hours", {"day": "monday"})]
    with pytest.raises(Exception) as raised:
        run(agent_chat(server.base_url, [HOURS], max_steps=10))
    assert "reached this run's budget of 6 tokens (STACKYARD_AGENT_TOKEN_BUDGET)" in str(raised.value)
    assert len(server.requests) == 2                              # 5, then 10 ≥ 6: no third call


def test_nested_agents_and_parallel_calls_spend_one_budget(server: ChatServer, monkeypatch: pytest.MonkeyPatch):
    """An agent calling, at once, a workflow tool that holds an agent: every model call of the run counts against
    one budget (each scripted call reports 5 tokens), and one reply makes at most 8 tool calls."""
    monkeypatch.setenv("STACKYARD_AGENT_TOKEN_BUDGET", "12")
    reset_settings_cache()
    inner = spec_from_dict({**agent_chat(server.base_url, [HOURS]), "inputs": {"question": ["prompt.question"]}})
    helper = workflow_tool("helper", "Asks the helper agent.", inner, workflow_id="d" * 32, version=1)

    def script(body: dict):
        if any(t["function"]["name"] == "helper" for t in body["tools"]):
            return [ToolCall("helper", {"question": f"q{n}"}) for n in range(20)] if not tool_results(body) else "x"
        return [ToolCall("opening_hours", {"day": "monday"})]          # the inner agent never stops by itself

    server.reply = script
    with pytest.raises(Exception, match="reached this run's budget of 12 tokens"):
        run(agent_chat(server.base_url, [helper], max_steps=10))
    inner_calls = [b for b in server.requests if b["tools"][0]["function"]["name"] == "opening_hours"]
    assert len(inner_calls) <= 8 and len(server.requests) <= 1 + 8           # not 1 + 20 × 10


@pytest.mark.parametrize(("where", "value", "expected"), [
    ("data.parameters", {"type": "object", "properties": {"day": 5}}, "cannot be made"),
    ("data.inputs_from_state", {"a": 5}, "maps state fields"),
    ("data.outputs_to_string", {"source": 5}, "maps each field"),
    ("data.outputs_to_state", {"token_usage": {"source": "prompt"}}, "cannot touch the agent's own state"),
    ("data.outputs_to_state", {"messages": {"source": "prompt"}}, "cannot touch the agent's own state"),
], ids=["bad-schema", "state-input", "string-source", "budget-reset", "messages"])
def test_odd_tool_fields_are_issues_not_errors(server: ChatServer, where: str, value, expected: str):
    tool = json.loads(json.dumps(HOURS))
    tool["data"][where.split(".")[1]] = value
    messages = [issue.message for issue in validate(spec_from_dict(agent_chat(server.base_url, [tool])))]
    assert any(expected in m for m in messages), messages


@pytest.mark.parametrize(("change", "expected"), [
    (lambda t: t["data"]["server_info"].update(foo=1), "unknown server_info field 'foo'"),
    (lambda t: t["data"]["server_info"].update(token={"type": "env_var"}), "must name an environment variable"),
    (lambda t: t["data"]["server_info"].update(type=5), "must be reached over Streamable HTTP"),
    (lambda t: t["data"]["server_info"].update(timeout=True), "'timeout' is seconds"),
    (lambda t: t["data"]["server_info"].update(max_retries=1000), "'max_retries' is a number from 0 to 5"),
    (lambda t: t["data"].update(outputs_to_state={"stock": 5}), "'outputs_to_state' is a mapping"),
], ids=["extra-key", "token-without-variable", "type-not-text", "bool-timeout", "retries", "per-tool-state"])
def test_odd_mcp_fields_are_issues_not_errors(server: ChatServer, mcp: McpServer, change, expected: str):
    tool = mcp_tools(mcp.url)
    change(tool)
    messages = [issue.message for issue in validate(spec_from_dict(agent_chat(server.base_url, [tool])))]
    assert any(expected in m for m in messages), messages


def test_odd_workflow_tool_mappings_and_sources_are_issues_not_errors(server: ChatServer):
    for key, value in (("output_mapping", ["p.prompt"]), ("output_mapping", {"p.prompt": ["a"]}),
                       ("input_mapping", {"item": "p.item"}), ("input_mapping", ["item"])):
        tool = json.loads(json.dumps(PRICES))
        tool["data"][key] = value
        messages = [i.message for i in validate(spec_from_dict(agent_chat(server.base_url, [tool])))]
        assert any(f"'{key}' is" in m for m in messages), (key, value, messages)
    odd = json.loads(json.dumps(PRICES))
    odd["data"]["pipeline"]["metadata"] = {"stackyard": "abc"}
    spec = spec_from_dict(agent_chat(server.base_url, [odd]))
    assert tool_sources(spec) == [] and check_no_cycle(spec, "a" * 32, "prices") is None
