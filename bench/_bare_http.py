"""A bare ASGI app that answers every request with an empty 200: the HTTP baseline for bench/runs.py.

Served by the same uvicorn (uvloop, httptools) as `stackyard web`, with no framework and no middleware,
so the round trip to it is what HTTP itself costs here.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
