"""Mount the editor into a FastAPI app: the Gradio page at ``/`` and its JS/CSS.

``stackyard.web.create_app`` calls :func:`mount` last: routes registered earlier (the HTTP API, the editor's
JSON endpoints, ``/login``) keep precedence over the page mounted at ``/``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ui.editor_page import PAGE_CSS, STATIC_DIR, STATIC_PATH, build


def mount(app: FastAPI) -> None:
    import gradio as gr

    from stackyard.settings import get_settings
    from ui.handlers import warm_up

    if get_settings().editor_warm_up:
        warm_up()
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="editor-static")
    gr.mount_gradio_app(app, build(), path="/", css=PAGE_CSS, footer_links=[], show_error=True,
                        run_history=False)
