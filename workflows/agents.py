"""Agent nodes: Haystack's ``Agent`` whose tools are nodes (``ComponentTool``) and saved workflows (``PipelineTool``).

In a definition an agent is exactly what Haystack writes: its ``chat_generator`` and each tool's component or
pipeline nested in its ``init_parameters``, so an exported agent loads in plain Haystack. Those nested parts are
checked here as strings before anything is imported, with the rules every node gets (the allowlist, secrets,
outbound URLs), and are built by Stackyard's own builder (models, stores, file confinement).

Stackyard's guards are hooks added when the agent is built, never written to the definition:

- the model may fill only the parameters a tool declares (``parameters``): the others stay as the PM set them;
- a tool result longer than ``STACKYARD_AGENT_TOOL_RESULT_CHARS`` is cut before the model reads it, saying so;
- the model calls of one run, all its agents together, stop at ``STACKYARD_AGENT_TOKEN_BUDGET`` tokens;
- a model reply makes at most ``MAX_CALLS_PER_STEP`` tool calls, and agents nest at most ``MAX_NESTING`` deep;
- a run that ends on its step limit or its budget fails with :class:`AgentStopped`, which says which and what
  to change, instead of passing a half-finished answer on.

A saved workflow becomes a tool with :func:`workflow_tool`: its pipeline is copied in (a version never changes),
and where it came from is kept in that copy's ``metadata.stackyard.source``, which :func:`tool_sources` reads to
refuse a workflow that would call itself.

Example::

    tool = workflow_tool("faq", "Answers FAQ questions.", version_spec, workflow_id="…", version=3)
    check_agent("agent", {"chat_generator": {...}, "tools": [tool], "max_agent_steps": 5})   # [] when all is well
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from nodes.catalog import AGENT
from stackyard.settings import Settings, get_settings
from workflows.allowlist import check_params, check_type
from workflows.build import ComponentBuildError
from workflows.errors import Issue, IssueCode, WorkflowInvalid
from workflows.spec import STACKYARD_META, ComponentSpec, WorkflowSpec, spec_from_dict

COMPONENT_TOOL = "haystack.tools.component_tool.ComponentTool"
PIPELINE_TOOL = "haystack.tools.pipeline_tool.PipelineTool"
MCP_TOOLSET = "haystack_integrations.tools.mcp.mcp_toolset.MCPToolset"
MCP_HTTP = "haystack_integrations.tools.mcp.mcp_tool.StreamableHttpServerInfo"
MAX_MCP_SECONDS = 120.0
_MCP_SERVER_KEYS = {"type", "url", "token", "headers", "timeout", "max_retries", "base_delay", "max_delay",
                    "oauth_config"}
_MCP_NUMBERS = {"max_retries": (0, 5, int), "base_delay": (0, 60, (int, float)), "max_delay": (0, 60, (int, float))}
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")     # what OpenAI accepts as a function name
MAX_TOOLS = 32
MAX_DESCRIPTION = 2_000
MAX_NESTING = 3            # agents inside agents (through workflow tools or an agent as a tool)
MAX_CALLS_PER_STEP = 8     # tool calls one model reply may make
MAX_OPEN_CALLS = 256       # agent calls one warm agent keeps budget books for at once
# Agent parameters that would run code or change how failures surface: only their default is allowed.
_FIXED = {"streaming_callback": None, "hooks": None, "raise_on_tool_invocation_failure": False,
          "tool_streaming_callback_passthrough": False}
_TOOL_STATE = ("inputs_from_state", "outputs_to_state", "outputs_to_string")   # data, unless they name a handler
# State fields an agent may keep (tools read and write them; each is also an output of the node), by the type
# names Haystack writes; a state "handler" would be imported code.
STATE_TYPES = ("str", "int", "float", "bool", "list[str]", "list[haystack.dataclasses.document.Document]",
               "dict[str, typing.Any]")
STATE_FIELD = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_RESERVED_STATE = ("messages", "last_message", "step_count", "token_usage", "tool_call_counts", "exit_reason",
                   "continue_run", "stop_run", "tools", "hook_context", "context_tokens", "streaming_callback",
                   "generation_kwargs", "system_prompt", "user_prompt", "required_variables", "break_point", "snapshot")
MAX_STATE_FIELDS = 16


class AgentStopped(Exception):
    """An agent ended on its step limit or token budget, without an answer."""


def _issue(node: str, where: str, message: str, code: str = IssueCode.BAD_PARAM) -> Issue:
    return Issue(code, node=node, port=where.split(".", 1)[0].split("[", 1)[0],
                 field=f"components.{node}.init_parameters.{where}", message=f"Node '{node}': {message}")


def _moved(issues: list[Issue], node: str, where: str) -> list[Issue]:
    """Issues found in a nested component, pinned to where it sits inside the agent."""
    inner = f"components.{node}.init_parameters"
    return [dataclasses.replace(issue, port=where.split(".", 1)[0].split("[", 1)[0],
                                field=(issue.field or inner).replace(f"components.{node}", f"{inner}.{where}", 1))
            for issue in issues]


def _check_component(node: str, data: Any, where: str, *, running: bool, depth: int) -> list[Issue]:
    """A nested ``{type, init_parameters}``: an allowlisted component with safe parameters."""
    if not isinstance(data, dict) or not isinstance(data.get("init_parameters", {}), dict) or set(data) - {
            "type", "init_parameters"}:
        return [_issue(node, where, f"'{where}' must be a component: {{type: <class path>, init_parameters: {{…}}}}.")]
    if (problem := check_type(node, data.get("type"))) is not None:
        return _moved([problem], node, where)
    params = data.get("init_parameters") or {}
    if data["type"] == AGENT:
        return _moved(check_agent(node, params, running=running, depth=depth + 1), node, where)
    return _moved(check_params(node, params, running=running), node, where)


def _check_pipeline(node: str, data: Any, where: str, *, running: bool, depth: int) -> list[Issue]:
    try:
        spec = spec_from_dict(data if isinstance(data, dict) else {"components": data})
    except WorkflowInvalid as exc:
        return [_issue(node, where, f"the workflow in '{where}' is not a pipeline: {exc.issues[0].message}")]
    issues = []
    for name, comp in spec.components.items():
        issues += _check_component(node, comp.model_dump(), f"{where}.components.{name}", running=running, depth=depth)
    return issues


def _mcp_secret_issues(node: str, value: Any, where: str, *, running: bool) -> list[Issue]:
    """A token or header is a secret named by an environment variable an operator granted, never the value itself
    (Haystack would store it in the workflow in clear)."""
    if value is None:
        return []
    if not (isinstance(value, dict) and value.get("type") == "env_var" and isinstance(value.get("env_vars"), list)
            and value["env_vars"] and all(isinstance(name, str) for name in value["env_vars"])):
        return [_issue(node, where, f"'{where}' must name an environment variable ({{type: env_var, env_vars: [NAME]}}), "
                                    "not hold the secret (a workflow is stored and exported in clear), or be null.",
                       IssueCode.DANGEROUS_PARAM)]
    return _moved(check_params(node, {"secret": value}, running=running), node, where.rsplit(".secret", 1)[0])


def mcp_server_refusal(url: Any) -> str | None:
    """Why an Agent may not use the MCP server at ``url``, if it may not: not among the operator's servers."""
    servers = get_settings().mcp_servers
    if not isinstance(url, str) or not any(url == s or (s.endswith("/") and url.startswith(s)) for s in servers):
        listed = ", ".join(servers) if servers else "none"
        return (f"MCP server {url!r} is not one an operator allows (STACKYARD_MCP_SERVERS: {listed}); ask an operator "
                "to add it")
    return None


def _names_a_handler(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "handler" in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _state_links(node: str, data: dict[str, Any], where: str) -> list[Issue]:
    """A tool's links to the agent's state (what it reads from it, writes to it, shows the model) are data, and
    are refused only when they name a handler: Haystack would import that function."""
    issues = []
    for key in _TOOL_STATE:
        value = data.get(key)
        if value in (None, {}, []):
            continue
        if not isinstance(value, dict):
            issues.append(_issue(node, f"{where}.{key}", f"'{key}' is a mapping, e.g. {{documents: {{source: "
                                                         "documents}}."))
        elif _names_a_handler(value):
            issues.append(_issue(node, f"{where}.{key}", f"'{key}' names a handler, which would load Python code; "
                                 "remove the handler (the source alone is kept).", IssueCode.DANGEROUS_PARAM))
        elif bad := _bad_state_link(key, value):
            issues.append(_issue(node, f"{where}.{key}", f"'{key}' {bad}"))
    return issues


def _bad_state_link(key: str, value: dict[str, Any]) -> str | None:
    """What is wrong with a tool's state links' shape, if anything: they name state fields (never the agent's own,
    e.g. token_usage or messages) and sockets by text."""
    if key == "inputs_from_state":
        pairs = list(value.items())
        if not all(isinstance(a, str) and isinstance(b, str) for a, b in pairs):
            return "maps state fields to the tool's inputs by name: {state_field: input_name}."
        fields = [field for field, _ in pairs]
    else:
        specs = [value] if key == "outputs_to_string" and "source" in value else list(value.values())
        fields = list(value) if key == "outputs_to_state" else []
        for spec in specs:
            if not isinstance(spec, dict) or set(spec) - {"source", "raw_result"} or not isinstance(
                    spec.get("source", ""), str) or not isinstance(spec.get("raw_result", False), bool):
                return "maps each field to {source: <the tool's output name>} (raw_result: true|false)."
    reserved = [field for field in fields if not isinstance(field, str) or field in _RESERVED_STATE]
    return f"cannot touch the agent's own state ({', '.join(map(str, reserved))})." if reserved else None


def _check_state(node: str, schema: Any) -> list[Issue]:
    if schema in (None, {}):
        return []
    if not isinstance(schema, dict) or len(schema) > MAX_STATE_FIELDS:
        return [_issue(node, "state_schema", f"state fields are a mapping of at most {MAX_STATE_FIELDS} fields, e.g. "
                                             "{documents: {type: 'list[haystack.dataclasses.document.Document]'}}.")]
    issues = []
    for name, field in schema.items():
        if not isinstance(name, str) or not STATE_FIELD.match(name) or name in _RESERVED_STATE:
            issues.append(_issue(node, "state_schema", f"state field {name!r} must be a lower-case name (letters, "
                                 f"digits, '_') other than {', '.join(_RESERVED_STATE)}."))
        elif not isinstance(field, dict) or set(field) != {"type"} or field["type"] not in STATE_TYPES:
            issues.append(_issue(node, f"state_schema.{name}", f"state field '{name}' is {{type: <one of "
                                 f"{', '.join(STATE_TYPES)}>}} (a handler would be imported code).",
                                 IssueCode.DANGEROUS_PARAM if isinstance(field, dict) and "handler" in field
                                 else IssueCode.BAD_PARAM))
    return issues


def _check_mcp(node: str, data: dict[str, Any], where: str, *, running: bool) -> list[Issue]:
    server = data.get("server_info")
    if not isinstance(server, dict) or server.get("type") != MCP_HTTP:
        kind = str(server.get("type", "?")).rsplit(".", 1)[-1] if isinstance(server, dict) else "?"
        return [_issue(node, f"{where}.server_info", f"an MCP server must be reached over Streamable HTTP "
                       f"({MCP_HTTP}), not {kind}: a stdio server would start a process on shared workers.",
                       IssueCode.NOT_ALLOWED)]
    issues: list[Issue] = []
    unknown = sorted(str(key) for key in set(server) - _MCP_SERVER_KEYS)
    if unknown:
        issues.append(_issue(node, f"{where}.server_info", f"unknown server_info field '{unknown[0]}'; the fields are "
                                                           f"{', '.join(sorted(_MCP_SERVER_KEYS))}."))
    for key, (low, high, kinds) in _MCP_NUMBERS.items():
        value = server.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high):
            issues.append(_issue(node, f"{where}.server_info.{key}", f"'{key}' is a number from {low} to {high}."))
    url = server.get("url")
    if (refusal := mcp_server_refusal(url)) is not None:
        issues.append(_issue(node, f"{where}.server_info.url", refusal + ".", IssueCode.DANGEROUS_PARAM))
    else:
        issues += _moved(check_params(node, {"url": url}, running=running), node, f"{where}.server_info")
    issues += _mcp_secret_issues(node, server.get("token"), f"{where}.server_info.token", running=running)
    headers = server.get("headers") or {}
    for key, value in headers.items() if isinstance(headers, dict) else [("headers", headers)]:
        issues += _mcp_secret_issues(node, value if value is not None else "", f"{where}.server_info.headers.{key}",
                                     running=running)
    if server.get("oauth_config") is not None:
        issues.append(_issue(node, f"{where}.server_info.oauth_config", "OAuth to an MCP server is not supported; "
                             "use a token from an environment variable.", IssueCode.NOT_ALLOWED))
    for key in ("timeout", "connection_timeout", "invocation_timeout"):
        value = server.get(key) if key == "timeout" else data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 < value <= MAX_MCP_SECONDS):
            issues.append(_issue(node, f"{where}.{key}", f"'{key}' is seconds, more than 0 and at most "
                                                         f"{MAX_MCP_SECONDS:g}."))
    names = data.get("tool_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) and TOOL_NAME.match(n)
                                                                   for n in names)):
        issues.append(_issue(node, f"{where}.tool_names", "tool_names lists the MCP tools to offer by name (letters, "
                                                          "digits, '_', '-'), or is empty for all of them."))
    if data.get("eager_connect"):
        issues.append(_issue(node, f"{where}.eager_connect", "eager_connect would connect while the workflow is "
                                                             "checked; leave it false (it connects when it runs)."))
    for key in _TOOL_STATE:                    # an MCP toolset links state per tool: {key: {tool: {…}}}
        per_tool = data.get(key)
        if per_tool not in (None, {}, []) and not isinstance(per_tool, dict):
            issues.append(_issue(node, f"{where}.{key}", f"'{key}' maps each of the server's tools to its links, "
                                                         "e.g. {search: {documents: {source: documents}}}."))
            continue
        for links in (per_tool or {}).values():
            issues += _state_links(node, {key: links}, where)
    return issues


def _check_tool(node: str, tool: Any, where: str, *, running: bool, depth: int) -> list[Issue]:
    if not isinstance(tool, dict) or tool.get("type") not in (COMPONENT_TOOL, PIPELINE_TOOL, MCP_TOOLSET) \
            or not isinstance(tool.get("data"), dict):
        return [_issue(node, where, f"'{where}' must be a tool: {{type: {COMPONENT_TOOL} (a node), {PIPELINE_TOOL} "
                                    f"(a workflow) or {MCP_TOOLSET} (an MCP server), data: {{…}}}}; code tools are "
                                    "not tools here.", IssueCode.NOT_ALLOWED)]
    data = tool["data"]
    if tool["type"] == MCP_TOOLSET:
        return _check_mcp(node, data, where, running=running)
    issues = []
    name = data.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        issues.append(_issue(node, f"{where}.data.name", f"tool name {name!r} must be 1-64 letters, digits, '_' or "
                                                          "'-' (the model calls the tool by it)."))
    description = data.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        issues.append(_issue(node, f"{where}.data.description", f"a tool's description is text of at most "
                                                                f"{MAX_DESCRIPTION:,} characters."))
    issues += _state_links(node, data, f"{where}.data")
    parameters = data.get("parameters")
    if parameters is not None and not (isinstance(parameters, dict) and isinstance(parameters.get("properties"), dict)):
        issues.append(_issue(node, f"{where}.data.parameters", "a tool's parameters are a JSON schema object with "
                                                               "'properties' (the arguments the model fills)."))
    if tool["type"] == COMPONENT_TOOL:
        issues += _check_component(node, data.get("component"), f"{where}.data.component", running=running,
                                   depth=depth)
    else:
        issues += _check_pipeline(node, data.get("pipeline"), f"{where}.data.pipeline", running=running, depth=depth)
        for key in ("input_mapping", "output_mapping"):
            mapping = data.get(key)
            good = mapping is None or (isinstance(mapping, dict) and all(
                isinstance(k, str) and (isinstance(v, str) if key == "output_mapping" else
                                        isinstance(v, list) and all(isinstance(ref, str) for ref in v))
                for k, v in mapping.items()))
            if not good:
                shape = "{tool_argument: [node.input, …]}" if key == "input_mapping" else "{node.output: name}"
                issues.append(_issue(node, f"{where}.data.{key}", f"'{key}' is {shape}."))
    return issues


def check_agent(node: str, params: dict[str, Any], *, running: bool = False, depth: int = 0) -> list[Issue]:
    """Every problem in an agent's parameters, its model and its tools, each pinned to where it is. ``depth``
    counts the agents around this one (an agent calling a workflow or an agent as a tool)."""
    if depth >= MAX_NESTING:
        return [_issue(node, "tools", f"agents nest more than {MAX_NESTING} deep (an agent calling a workflow or an "
                                      "agent that has agents of its own …); give the innermost agent its tools "
                                      "directly.")]
    issues = check_params(node, {k: v for k, v in params.items()
                                 if k not in ("chat_generator", "tools", "state_schema", *_FIXED)}, running=running)
    for key, default in _FIXED.items():
        if params.get(key) not in (None, default):
            issues.append(_issue(node, key, f"'{key}' can only be {default!r} here: Stackyard sets it itself.",
                                 IssueCode.DANGEROUS_PARAM))
    issues += _check_state(node, params.get("state_schema"))
    exits = params.get("exit_conditions")
    if exits is not None and not (isinstance(exits, list) and all(isinstance(e, str) for e in exits)):
        issues.append(_issue(node, "exit_conditions", "exit conditions are a list of names: 'text', or tools that end "
                                                      "the run when called."))
    cap = get_settings().agent_max_steps
    steps = params.get("max_agent_steps", 100)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= cap:
        issues.append(_issue(node, "max_agent_steps", f"max steps must be a whole number from 1 to {cap} "
                                                      "(STACKYARD_AGENT_MAX_STEPS)."))
    if "chat_generator" not in params:
        issues.append(_issue(node, "chat_generator", "pick the chat model the agent thinks with (chat_generator)."))
    else:
        issues += _check_component(node, params["chat_generator"], "chat_generator", running=running, depth=depth)
    tools = params.get("tools") or []
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        return issues + [_issue(node, "tools", f"tools must be a list of at most {MAX_TOOLS} tools.")]
    names = [t["data"].get("name") for t in tools if isinstance(t, dict) and isinstance(t.get("data"), dict)
             and t.get("type") != MCP_TOOLSET]
    issues += [_issue(node, "tools", f"two tools are named '{name}'; give each its own name.")
               for name in sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})]
    for index, tool in enumerate(tools):
        issues += _check_tool(node, tool, f"tools[{index}]", running=running, depth=depth)
    return issues


def workflow_tool(name: str, description: str, spec: WorkflowSpec, *, workflow_id: str, version: int) -> dict[str, Any]:
    """A saved workflow version as a tool: its pipeline copied in, its declared inputs the tool's arguments and
    its declared outputs what the model reads back."""
    pipeline = spec.haystack_dict()
    pipeline["metadata"] = {**pipeline.get("metadata", {}), STACKYARD_META: {
        **(pipeline.get("metadata", {}).get(STACKYARD_META) or {}), "source": {"workflow": workflow_id,
                                                                              "version": version}}}
    return {"type": PIPELINE_TOOL, "data": {
        "pipeline": pipeline, "name": name, "description": description,
        "input_mapping": {alias: list(refs) for alias, refs in spec.inputs.items()},
        "output_mapping": {ref: alias for alias, ref in spec.outputs.items()}, "parameters": None}}


def component_parts(spec: WorkflowSpec) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(node, type, init_parameters)`` of every component in ``spec`` and inside its agents (their models, the
    nodes they call as tools, the nodes of the workflows they call: ``node`` is then the agent's), what a worker
    loads. The dicts are the spec's own, so a caller may fill them in (an export's store URIs)."""
    stack: list[tuple[str, Any, Any]] = [(name, comp.type, comp.init_parameters)
                                         for name, comp in spec.components.items()]
    while stack:
        node, type_, params = stack.pop()
        if not isinstance(type_, str) or not isinstance(params, dict):
            continue
        yield node, type_, params
        if type_ != AGENT:
            continue
        nested = [params.get("chat_generator")]
        tools = params.get("tools")
        for tool in tools if isinstance(tools, list) else []:
            data = tool.get("data") if isinstance(tool, dict) else None
            if isinstance(data, dict):
                nested.append(data.get("component"))
                pipeline = data.get("pipeline")
                if isinstance(pipeline, dict) and isinstance(pipeline.get("components"), dict):
                    nested.extend(pipeline["components"].values())
        stack.extend((node, comp.get("type"), comp.setdefault("init_parameters", {})) for comp in nested
                     if isinstance(comp, dict))


def _tools_of(spec_components: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for comp in spec_components.values():
        comp = comp.model_dump() if isinstance(comp, ComponentSpec) else comp
        tools = (_dict_at(comp, "init_parameters") or {}).get("tools")
        if isinstance(comp, dict) and comp.get("type") == AGENT and isinstance(tools, list):
            yield from (tool for tool in tools if isinstance(tool, dict))


def _dict_at(value: Any, *keys: str) -> dict[str, Any] | None:
    """``value[k1][k2]…`` when each step is a mapping, else None (the author controls every level)."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else None


def tool_sources(spec: WorkflowSpec) -> list[tuple[str, int]]:
    """The saved workflows (id, version) this one calls as tools, through every level of workflow tools."""
    found, stack = [], [spec.components]
    while stack:
        for tool in _tools_of(stack.pop()):
            pipeline = _dict_at(tool, "data", "pipeline")
            if tool.get("type") != PIPELINE_TOOL or pipeline is None:
                continue
            source = _dict_at(pipeline, "metadata", STACKYARD_META, "source") or {}
            if isinstance(source.get("workflow"), str):
                found.append((source["workflow"], source.get("version")))
            if isinstance(pipeline.get("components"), dict):
                stack.append(pipeline["components"])
    return found


def check_no_cycle(spec: WorkflowSpec, workflow_id: str, name: str) -> None:
    """Refuse a version of ``workflow_id`` that calls itself through its workflow tools."""
    for source, version in tool_sources(spec):
        if source == workflow_id:
            raise WorkflowInvalid([Issue(IssueCode.NOT_ALLOWED, field="components", message=(
                f"Workflow '{name}' calls itself: one of its agents' tools runs version {version} of '{name}', so "
                "the two would call each other. Remove that tool, or use another workflow."))])


# ---- building -------------------------------------------------------------------------------------------------

def build_agent(node: str, params: dict[str, Any], *, settings: Settings, running: bool,
                make_component: Callable[[ComponentSpec], Any], make_pipeline: Callable[[WorkflowSpec], Any]) -> Any:
    """The agent with its model and tools built by Stackyard's builder and its guards attached.

    :raises ComponentBuildError: listing every problem in its parameters, its model and its tools.
    """
    from haystack.components.agents import Agent
    from haystack.tools import ComponentTool

    issues = check_agent(node, params, running=running)
    if issues:
        raise ComponentBuildError(issues)
    tools = [_built_tool(node, index, tool, make_component, make_pipeline)
             for index, tool in enumerate(params.get("tools") or [])]
    plain = {k: v for k, v in params.items() if k not in ("chat_generator", "tools", "state_schema", *_FIXED)}
    plain["state_schema"] = {name: {"type": _state_type(field["type"])}
                             for name, field in (params.get("state_schema") or {}).items()}
    declared = {t.name: set(t.parameters.get("properties", {})) for t in tools if isinstance(t, ComponentTool)}
    budget = _SharedBudget(settings.agent_token_budget)
    hooks = {"before_llm": [budget],
             "before_tool": [budget, _OnlyDeclaredArguments(declared)],
             "after_tool": [_CutResults(settings.agent_tool_result_chars)],
             "after_run": [budget, _SayWhyItStopped(node, params.get("max_agent_steps", 100),
                                                    settings.agent_token_budget)]}
    generator = make_component(ComponentSpec(**params["chat_generator"]))
    try:
        return Agent(chat_generator=generator, tools=tools, hooks=hooks, **plain)
    except Exception as exc:  # noqa: BLE001 - e.g. a generator that cannot call tools: a bad parameter
        raise ComponentBuildError([_issue(node, "chat_generator", f"the agent cannot be made: {str(exc)[:500]}. Fix "
                                          "the parameter it names; its model must be a chat model that calls tools "
                                          "(OpenAI-compatible or a local chat model).")]) from None


def _built_tool(node: str, index: int, tool: dict[str, Any], make_component: Callable[[ComponentSpec], Any],
                make_pipeline: Callable[[WorkflowSpec], Any]) -> Any:
    """Tool ``index`` of an agent, its component or workflow built by Stackyard's builder; whatever Haystack's tool
    classes refuse is an issue pinned to that tool."""
    from haystack.tools import ComponentTool, PipelineTool

    data = tool["data"]
    common = {"name": data.get("name"), "description": data.get("description") or data.get("name"),
              "parameters": data.get("parameters"), **{key: data.get(key) or None for key in _TOOL_STATE}}
    try:
        if tool["type"] == MCP_TOOLSET:       # connects when the agent warms up, which names it if it cannot
            from haystack_integrations.tools.mcp import MCPToolset

            return MCPToolset.from_dict(copy.deepcopy(tool))
        if tool["type"] == COMPONENT_TOOL:
            return ComponentTool(make_component(ComponentSpec(**data["component"])), **common)
        declared = {"inputs": data.get("input_mapping") or {},
                    "outputs": {alias: ref for ref, alias in (data.get("output_mapping") or {}).items()}}
        return PipelineTool(make_pipeline(spec_from_dict({**data["pipeline"], **declared})),
                            input_mapping=data.get("input_mapping"), output_mapping=data.get("output_mapping"), **common)
    except ComponentBuildError:
        raise
    except WorkflowInvalid as exc:
        raise ComponentBuildError(_moved(exc.issues, node, f"tools[{index}].data")) from None
    except Exception as exc:  # noqa: BLE001 - what a tool class refuses is a bad parameter of that tool
        raise ComponentBuildError([_issue(node, f"tools[{index}]", f"tool {index} ({data.get('name') or tool['type']}) "
                                          f"cannot be made: {str(exc)[:500]}. Fix its fields.")]) from None


def _state_type(name: str) -> Any:
    from haystack.utils.type_serialization import deserialize_type

    return deserialize_type(name)        # one of STATE_TYPES, checked above: no other name reaches it


def streams_while_calling_tools(component: Any) -> bool:
    """Whether a node can be handed a streaming callback: not an agent whose model cannot stream and call tools
    at once (a local transformers model refuses both); such an agent's answer arrives whole when it is done."""
    from haystack.components.agents import Agent

    if not isinstance(component, Agent):
        return True
    return type(component.chat_generator).__name__ != "TransformersChatGenerator"


@dataclasses.dataclass
class _RunBudget:
    """The tokens one run's agents have used, together: nested agents and parallel tool calls share it."""

    limit: int
    used: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def add(self, tokens: int) -> int:
        with self.lock:
            self.used += tokens
            return self.used


_budget: contextvars.ContextVar[_RunBudget | None] = contextvars.ContextVar("stackyard_agent_budget", default=None)


@contextlib.contextmanager
def run_budget(limit: int | None = None) -> Iterator[_RunBudget]:
    """One token budget (``STACKYARD_AGENT_TOKEN_BUDGET``) for every agent of the run inside: a tool that runs an
    agent, or several at once, spends from the same one. Tool threads inherit it (Haystack copies the context)."""
    budget = _RunBudget(limit if limit is not None else get_settings().agent_token_budget)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def _tokens(usage: Any) -> int:
    """Input plus output tokens of an agent's ``token_usage`` so far (OpenAI's or other providers' key names)."""
    usage = usage if isinstance(usage, dict) else {}

    def first(*keys: str) -> int:
        return next((int(usage[k]) for k in keys if isinstance(usage.get(k), (int, float))), 0)

    return first("prompt_tokens", "input_tokens") + first("completion_tokens", "output_tokens")


class _SharedBudget:
    """Adds what each model call of this agent used to the run's budget (``run_budget``; without one, a budget
    of this agent's call alone) and stops the agent before a model call once the budget is spent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: dict[int, tuple[_RunBudget, int]] = {}       # per agent call (its State): its budget, tokens
        self.lock = threading.Lock()

    def run(self, state: Any) -> None:
        total = _tokens(state.data.get("token_usage"))
        with self.lock:
            budget, counted = self.seen.get(id(state)) or (_budget.get() or _RunBudget(self.limit), 0)
            if len(self.seen) > MAX_OPEN_CALLS:     # calls that raised never reached after_run: forget the oldest
                self.seen.pop(next(iter(self.seen)))
            self.seen[id(state)] = (budget, total)
            if state.data.get("exit_reason") is not None:
                self.seen.pop(id(state), None)          # after_run (the reason is set by then): this call is over
        used = budget.add(total - counted)
        if used >= budget.limit and state.data.get("exit_reason") is None:
            state.set("stop_run", "token_budget_exceeded")


class _OnlyDeclaredArguments:
    """The model fills only the arguments a tool declares: others are dropped, so what the PM fixed stays fixed
    (Haystack passes any argument that names a component input). Arguments that are not a JSON object (a list of
    pairs would become keyword arguments all the same) count as none; a step calls at most ``MAX_CALLS_PER_STEP``
    tools (the rest are dropped before they run)."""

    def __init__(self, declared: dict[str, set[str]]) -> None:
        self.declared = declared

    def run(self, state: Any) -> None:
        from haystack.dataclasses import ChatMessage, ToolCall

        message = state.data["messages"][-1]
        calls = []
        for call in message.tool_calls[:MAX_CALLS_PER_STEP]:
            arguments = call.arguments if isinstance(call.arguments, dict) else {}
            allowed = self.declared.get(call.tool_name)
            if allowed is not None:
                arguments = {key: value for key, value in arguments.items() if key in allowed}
            calls.append(ToolCall(tool_name=call.tool_name, arguments=arguments, id=call.id, extra=call.extra))
        state.data["messages"][-1] = ChatMessage.from_assistant(text=message.text, meta=message.meta,
                                                                name=message.name, tool_calls=calls,
                                                                reasoning=message.reasoning)


class _CutResults:
    """A tool result the model reads is at most ``chars`` characters; a longer one is cut, saying how long it was."""

    def __init__(self, chars: int) -> None:
        self.chars = chars

    def run(self, state: Any) -> None:
        from haystack.dataclasses import ChatMessage

        messages = state.data["messages"]
        for index in range(len(messages) - 1, -1, -1):
            result = messages[index].tool_call_result
            if result is None:
                break                                   # the tool messages of this step are the last ones
            if isinstance(result.result, str) and len(result.result) > self.chars:
                cut = (f"{result.result[:self.chars]}\n[… cut: the tool returned {len(result.result):,} characters; "
                       f"this shows the first {self.chars:,}.]")
                messages[index] = ChatMessage.from_tool(cut, origin=result.origin, error=result.error)


class _SayWhyItStopped:
    """An agent that ran out of steps or tokens fails its node with what happened and what to change."""

    def __init__(self, node: str, steps: int, budget: int) -> None:
        self.node, self.steps, self.budget = node, steps, budget

    def run(self, state: Any) -> None:
        reason = state.data.get("exit_reason")
        if reason == "max_agent_steps":
            raise AgentStopped(f"Agent '{self.node}' stopped after {self.steps} steps without an answer (its max steps "
                               f"is {self.steps}): raise max steps, or tell the model in its system prompt when to "
                               "answer.")
        if reason == "token_budget_exceeded":
            raise AgentStopped(f"Agent '{self.node}' stopped when its model calls reached this run's budget of "
                               f"{self.budget:,} tokens (STACKYARD_AGENT_TOKEN_BUDGET), without an answer: give it "
                               "fewer steps or shorter tool results, or ask an operator to raise the budget.")
