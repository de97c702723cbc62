"""Published apps as MCP tools: one Streamable-HTTP MCP endpoint, ``/v1/mcp/``, beside the OpenAI-compatible API.

A client lists the apps its API key may use (every app, or the one it is scoped to) as tools: the app's slug is
the tool's name, its declared inputs the tool's arguments (the app's message input required; its history input
left out). Calling a tool runs the app's pinned version as a normal run (its queue, trace, concurrency limit and
the key's rate limit) and answers with the app's reply; a run that fails, or a bad argument, comes back as a tool
error the client's model can read. Keys are checked per request (``Authorization: Bearer <key>``), stateless: any
web process answers any request.

Example (the official ``mcp`` client)::

    async with streamable_http_client(f"{base}/v1/mcp/", http_client=httpx2.AsyncClient(headers=auth)) as (r, w):
        async with ClientSession(r, w) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools          # one per app the key may use
            result = await session.call_tool("support", {"question": "Where do I park?"})
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from mcp import types
from mcp.server import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from api.errors import error_body
from api.routes.apps import authenticated, caller
from apps import chat, publishing
from apps.keys import ApiKey
from runs import lifecycle as runs
from runs.models import Run, RunState
from stackyard.errors import StackyardError
from stackyard.json_limits import MAX_JSON_DEPTH, too_deep
from stackyard.settings import get_settings
from store.db import autocommit_scope

MCP_PATH = "/v1/mcp"
TOOL_SECONDS = 300.0      # as long as an OpenAI-compatible completion may take


def _authorization(ctx: ServerRequestContext) -> str | None:
    return ctx.request.headers.get("authorization") if ctx.request is not None else None


def _schema(publication: Any, spec: Any, required: list[str]) -> dict[str, Any]:
    names = [alias for alias in spec.inputs if alias != publication.history_input]
    properties = {alias: {"type": "string", "description": "The message to send."} if alias == publication.message_input
                  else {"description": f"The workflow's input '{alias}' (any JSON value)."} for alias in names}
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "required": [a for a in names if a == publication.message_input or a in required]}


def app_tools(key: ApiKey) -> list[types.Tool]:
    """The apps ``key`` may use, as MCP tools."""
    with autocommit_scope() as session:
        tools = []
        for app in publishing.list_publications(session=session):
            if key.app_slug not in (None, app.slug):
                continue
            info = runs.version_info(session, app.version_id)
            title = info.spec.metadata.get("title") if isinstance(info.spec.metadata.get("title"), str) else None
            description = info.spec.metadata.get("description")
            tools.append(types.Tool(
                name=app.slug, title=title,
                description=description if isinstance(description, str) and description else
                f"Ask the '{app.slug}' app (version {info.number} of its workflow) and get its reply.",
                input_schema=_schema(app, info.spec, info.required)))
        return tools


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _publication(slug: str) -> Any:
    with autocommit_scope() as session:
        publication = publishing.get_publication(session=session, slug=slug)
        session.expunge(publication)
        return publication


async def _run_app(slug: str, arguments: dict[str, Any]) -> types.CallToolResult:
    publication = await run_in_threadpool(_publication, slug)
    run_id, slot = await run_in_threadpool(chat.open_run, slug, arguments)
    finished: Run | None = None
    with slot:
        async for item in chat.follow(run_id, timeout=TOOL_SECONDS):
            if isinstance(item, Run):
                finished = item
    if finished is None or finished.state != RunState.SUCCEEDED:
        state = finished.state.value if finished is not None else "lost"
        return _error(f"The app '{slug}' did not answer: its run {run_id} {state}"
                      f"{': ' + finished.error if finished is not None and finished.error else ''}.")
    reply = chat.reply_text(publication, finished.outputs)
    return types.CallToolResult(content=[types.TextContent(type="text", text=reply)],
                                structured_content={"reply": reply, "run_id": run_id})


def _too_much(arguments: dict[str, Any]) -> str | None:
    """What is wrong with a call's arguments, if anything: the limits every request body has."""
    limit = get_settings().max_body_bytes
    if too_deep(arguments):
        return f"The arguments nest more than {MAX_JSON_DEPTH} levels deep; flatten them."
    if len(json.dumps(arguments)) > limit:
        return f"The arguments are over {limit:,} bytes (STACKYARD_MAX_BODY_BYTES); send less."
    return None


def create_server() -> Server:
    """The MCP server: its tools are the apps the caller's key may use."""

    async def on_list_tools(ctx: ServerRequestContext, params: Any) -> types.ListToolsResult:
        key = await run_in_threadpool(caller, _authorization(ctx), None)       # the key's rate counts listing too
        return types.ListToolsResult(tools=await run_in_threadpool(app_tools, key))

    async def on_call_tool(ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            await run_in_threadpool(caller, _authorization(ctx), params.name)
            arguments = params.arguments or {}
            if problem := await run_in_threadpool(_too_much, arguments):
                return _error(problem)
            return await _run_app(params.name, arguments)
        except StackyardError as exc:          # unknown app, out of scope, rate, a bad input: the model reads why
            return _error(str(exc))

    return Server("stackyard", on_list_tools=on_list_tools, on_call_tool=on_call_tool)


class McpEndpoint:
    """The ASGI app at ``/v1/mcp/``: a request without a valid API key is answered 401 before its body is read (as
    the OpenAI API does); the rest go to the MCP server's session manager, a fresh one each time the web app starts
    (:meth:`running`, in its lifespan: a manager runs only once)."""

    def __init__(self) -> None:
        self.server = create_server()
        self.manager: StreamableHTTPSessionManager | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        manager = StreamableHTTPSessionManager(app=self.server, stateless=True, json_response=True,
                                               max_request_body_size=get_settings().max_body_bytes)
        async with manager.run():
            self.manager = manager
            try:
                yield
            finally:
                self.manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        try:
            await run_in_threadpool(authenticated, header.decode("latin-1") if header else None)
            if self.manager is None:
                raise NotServing("The MCP endpoint is starting or stopping; try again in a moment.")
        except StackyardError as exc:
            await JSONResponse(error_body(str(exc), type(exc).__name__), status_code=exc.status)(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)


class NotServing(StackyardError):
    status = 503
