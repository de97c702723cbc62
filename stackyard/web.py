"""The web process's ASGI app: the HTTP API (``api``) with the pages (``ui``) mounted into it.

The one place that knows both transports: ``api`` and ``ui`` never import each other.
"""

from __future__ import annotations

from fastapi import FastAPI


def create_app(*, with_ui: bool = True) -> FastAPI:
    """The API; with ``with_ui``, also the editor's JSON endpoints and the Gradio pages."""
    from api.app import create_app as create_api

    app = create_api()
    if not with_ui:
        return app
    from api.routes import editor
    from ui.apps_page import mount_apps
    from ui.chat_page import mount_chat
    from ui.jobs_page import mount_jobs

    mount_chat(app)  # before the editor, which is mounted at "/"
    mount_jobs(app)
    mount_apps(app)
    app.include_router(editor.router)
    try:
        from ui.app import mount
    except ImportError:  # an install without the editor's page
        return app
    mount(app)
    return app
