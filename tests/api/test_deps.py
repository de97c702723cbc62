"""The request's session (api/deps.py) commits before the client sees the answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

GREET = {"components": {"p": {"type": "haystack.components.builders.prompt_builder.PromptBuilder",
                              "init_parameters": {"template": "Hello {{ name }}"}}},
         "inputs": {"name": ["p.name"]}, "outputs": {"greeting": "p.prompt"}}


def test_a_created_workflow_is_committed_before_its_201_is_sent(database: str):
    """A client that sends its next request the moment it reads a 201 must find what it created: FastAPI runs
    a yield dependency's code after the yield once the response is sent, unless the dependency is scoped to
    the function. Seen as a 404 for a just-created workflow under load in CI."""
    from api.app import create_app

    app = create_app()
    engine = create_engine(database, poolclass=NullPool)
    seen: dict[str, Any] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            with engine.connect() as other:   # what another request would read at this moment
                seen["rows"] = other.execute(text("SELECT count(*) FROM workflow WHERE name = 'committed'")).scalar_one()

    body = json.dumps({"name": "committed", "spec": GREET}).encode()
    received = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive() -> dict[str, Any]:
        return next(received, {"type": "http.disconnect"})

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/v1/workflows", "raw_path": b"/api/v1/workflows", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    try:
        asyncio.run(app(scope, receive, send))
    finally:
        engine.dispose()
    assert seen == {"status": 201, "rows": 1}
