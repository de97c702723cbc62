"""A Streamable-HTTP MCP server on 127.0.0.1 for tests, made with the official `mcp` package (its ``MCPServer``) and
served by uvicorn in a thread. Its tools: ``add`` (two whole numbers), ``stock`` (how many of an item the shop has)
and ``whoami`` (the Authorization header it was called with); it records the tool calls it served."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

from tests.support.stack import free_port


class McpServer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        server = MCPServer("shop-tools")

        @server.tool()
        def add(a: int, b: int) -> int:
            """Add two whole numbers."""
            self.calls.append(("add", {"a": a, "b": b}))
            return a + b

        @server.tool()
        def stock(item: str) -> str:
            """How many of an item the shop has in stock."""
            self.calls.append(("stock", {"item": item}))
            return f"{item}: 7 in stock"

        @server.tool()
        def whoami(ctx: Context) -> str:
            """The Authorization header of the call."""
            return (ctx.headers or {}).get("authorization", "<none>")

        self.port = free_port()
        app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> McpServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise AssertionError("the MCP server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
