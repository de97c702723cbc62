"""Request bodies of the HTTP API, bounded before any work: size (``STACKYARD_MAX_BODY_BYTES``) and JSON nesting.

Every ``APIRouter`` in ``api/routes`` is built with ``route_class=LimitedRoute``, so each handler receives a
:class:`LimitedRequest`: ``body()`` refuses a body over the limit by its Content-Length before reading and
while reading it (413), and ``json()`` refuses one nested deeper than :data:`MAX_JSON_DEPTH` (400) right after
parsing. Routes whose body FastAPI parses have it read before FastAPI's own parsing, whose catch-all would
turn these answers into a bare 400. Streaming uploads (``request.stream()``, ``request.form()``) keep their
own, larger limits.

The pages' Gradio routes (server functions, queue joins, uploads) are not FastAPI routes of ours:
:class:`GradioBodyLimit` caps their bodies before Gradio reads them, calls at the same limit plus Gradio's
envelope, uploads at what the page declared when it was mounted (``ui.pages.mount_page``); a page that
declared none takes no uploads.

Example::

    router = APIRouter(prefix="/api/v1", route_class=LimitedRoute)
    app.add_middleware(GradioBodyLimit, uploads=app.state.gradio_uploads)   # {"/jobs": 50_000_000}
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import RequestTooLarge, error_body
from stackyard.errors import StackyardError
from stackyard.json_limits import MAX_JSON_DEPTH, JsonTooDeep, loads
from stackyard.settings import get_settings

INLINE_PARSE_BYTES = 64 * 1024
GRADIO_ENVELOPE_BYTES = 64 * 1024  # session hash, component id, function name, event data around the payload
GRADIO_SETTING = f"STACKYARD_MAX_BODY_BYTES plus {GRADIO_ENVELOPE_BYTES} for the page's request"


class BodyInvalid(StackyardError):
    status = 400


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<anything>+json``, as FastAPI decides whether to parse a body."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def parse_json(body: bytes) -> Any:
    """``json.loads`` with the nesting limit: BodyInvalid (400) for malformed or too deeply nested JSON."""
    try:
        return loads(body)
    except JsonTooDeep:
        raise _too_deep_error() from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8/16/32
        raise BodyInvalid(f"The body is not valid JSON: {exc}.") from None


def _too_deep_error() -> BodyInvalid:
    return BodyInvalid(f"The JSON body nests objects and arrays more than {MAX_JSON_DEPTH} levels deep; "
                       "send a flatter document (e.g. a long text as one string).")


class LimitedRequest(Request):
    """A Request whose ``body()`` and ``json()`` stop at ``STACKYARD_MAX_BODY_BYTES`` and ``MAX_JSON_DEPTH``."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            limit = get_settings().max_body_bytes
            length = self.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise _too_large(int(length), limit)
            chunks: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(size, limit, at_least=True)
                chunks.append(chunk)
            self._body = b"".join(chunks)  # Starlette's cache: stream() and form() replay it
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            # Chat bodies are small: parse them inline; a large spec or job would hold the event loop up.
            inline = len(body) <= INLINE_PARSE_BYTES
            self._json = parse_json(body) if inline else await run_in_threadpool(parse_json, body)
        return self._json


def _too_large(size: int, limit: int, *, at_least: bool = False,
               setting: str = "STACKYARD_MAX_BODY_BYTES") -> RequestTooLarge:
    return RequestTooLarge(f"The request body is {'over ' if at_least else ''}{size} bytes; the limit is {limit} "
                           f"bytes ({setting}).")


class LimitedRoute(APIRoute):
    """An APIRoute whose handlers get a :class:`LimitedRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        parsed_by_fastapi = self.body_field is not None

        async def limited(request: Request) -> Response:
            request = LimitedRequest(request.scope, request.receive)
            if parsed_by_fastapi:
                body = await request.body()
                if body and is_json(request.headers.get("content-type")):
                    await request.json()  # FastAPI then reuses the parsed value
            return await handler(request)

        return limited


class GradioBodyLimit:
    """Pure ASGI middleware: a body sent to a page's ``…/gradio_api/…`` route is at most
    ``STACKYARD_MAX_BODY_BYTES`` plus :data:`GRADIO_ENVELOPE_BYTES`, or, to ``…/gradio_api/upload`` (or as any
    multipart body), the bytes ``uploads`` grants the page (plus the envelope), else the request gets a 413
    naming the limit before Gradio reads a byte of it. Bodies without a Content-Length are read up to the
    limit first.

    ``uploads`` maps a page's mount path (``""`` for the editor at ``/``) to its largest upload; it is read
    per request, so pages mounted after the middleware was added count."""

    def __init__(self, app: ASGIApp, *, uploads: Mapping[str, int]) -> None:
        self.app, self.uploads = app, uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        page, found, route = scope["path"].partition("/gradio_api/") if scope["type"] == "http" else ("", "", "")
        if not found or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if route.startswith("upload") or media == "multipart/form-data":  # process_recording and the like take files too
            granted = self.uploads.get(page)
            if granted is None:
                error = RequestTooLarge(f"This page ({page or '/'}) takes no file uploads; upload files in the editor's "
                                        "run panel or under the files root (STACKYARD_FILES_ROOT).")
                await _refuse(error, scope, receive, send)
                return
            limit, setting = granted + GRADIO_ENVELOPE_BYTES, f"the largest upload {page} takes, plus {GRADIO_ENVELOPE_BYTES}"
        else:
            limit, setting = get_settings().max_body_bytes + GRADIO_ENVELOPE_BYTES, GRADIO_SETTING
        length = headers.get("content-length", "")
        if length.isdigit():
            if int(length) > limit:
                await _refuse(_too_large(int(length), limit, setting=setting), scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server stops the body at its declared length
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > limit:
                await _refuse(_too_large(size, limit, at_least=True, setting=setting), scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _refuse(error: RequestTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse(error_body(str(error), "RequestTooLarge"), status_code=error.status)(scope, receive, send)
