"""The embeddable chat widget of a published app.

``<script src="…/widget.js" data-app="<slug>" data-key="<a key made for that app>">`` puts a chat bubble on any
page; the chat runs in an iframe at ``/widget/<slug>`` (also usable on its own as an iframe URL), served by
Stackyard with a Content-Security-Policy whose ``frame-ancestors`` are Stackyard itself and the origins the
operator lists in ``STACKYARD_WIDGET_ORIGINS``: a browser refuses to show it on any other page. Inside, the
iframe calls only the app's chat routes, same-origin, with the page's key (which the API refuses unless it is
scoped to that app alone) and an opaque visitor id of its own, so visitors sharing the key never see each
other's conversations.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from apps import publishing
from stackyard.errors import StackyardError
from stackyard.settings import get_settings
from store.db import autocommit_scope

STATIC = Path(__file__).parent / "static" / "widget"
STATIC_PATH = "/widget-static"
SAFE = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def policy() -> str:
    """The iframe page's Content-Security-Policy: its own scripts and styles, calls to Stackyard only, and
    embedding by Stackyard and the operator's widget origins only."""
    ancestors = " ".join(["'self'", *get_settings().widget_origins])
    return (f"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
            f"base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}")


def page(slug: str, title: str) -> str:
    name = html.escape(slug, quote=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><link rel="stylesheet" href="{STATIC_PATH}/widget.css"></head>
<body data-app="{name}">
<header><span>{html.escape(title)}</span><button type="button" id="new">New chat</button></header>
<div id="log" aria-live="polite"></div><div id="status"></div>
<form id="ask"><input id="message" autocomplete="off" placeholder="Ask a question" aria-label="Message" maxlength="20000">
<button type="submit">Send</button></form>
<script src="{STATIC_PATH}/chat.js"></script></body></html>"""


def mount_widget(app: FastAPI) -> None:
    @app.get("/widget.js", include_in_schema=False)
    def loader() -> FileResponse:
        return FileResponse(STATIC / "loader.js", media_type="text/javascript", headers=SAFE)

    @app.get(STATIC_PATH + "/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        kinds = {"chat.js": "text/javascript", "widget.css": "text/css"}
        if name not in kinds:
            return HTMLResponse("Not found", status_code=404, headers=SAFE)
        return FileResponse(STATIC / name, media_type=kinds[name], headers=SAFE)

    @app.get("/widget/{slug}", include_in_schema=False)
    def widget(slug: str) -> HTMLResponse:
        headers = {**SAFE, "Content-Security-Policy": policy()}
        try:
            with autocommit_scope() as session:
                publishing.get_publication(session=session, slug=slug)
        except StackyardError:
            return HTMLResponse(f"<p>No app '{html.escape(slug[:64])}' is published here.</p>", status_code=404,
                                headers=headers)
        return HTMLResponse(page(slug, slug), headers=headers)
