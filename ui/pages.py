"""Mounting a Gradio page under a path, so that the path answers as links and README write it.

Starlette's mount at ``/apps`` serves ``/apps/`` only; ``/apps`` would fall through to the editor mounted at
``/`` and answer ``{"detail":"Not Found"}``. :func:`mount_page` adds a redirect from the bare path.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse


def mount_page(app: FastAPI, blocks: gr.Blocks, path: str, *, uploads: int | None = None, **options: Any) -> None:
    """Mount ``blocks`` at ``path``/ and redirect ``path`` there, keeping the query string. ``uploads``: the
    largest file the page takes, in bytes; without it the page takes no uploads (``api.bodies.GradioBodyLimit``)."""

    @app.get(path, include_in_schema=False)
    def to_page(request: Request) -> RedirectResponse:
        query = request.url.query
        return RedirectResponse(f"{path}/" + (f"?{query}" if query else ""), status_code=307)

    if uploads is not None:
        app.state.gradio_uploads[path] = uploads
        options["max_file_size"] = uploads
    gr.mount_gradio_app(app, blocks, path=path, **options)
