"""The web process's ASGI app: the HTTP API (``api``) with the pages (``ui``) mounted into it.

The one place that knows both transports: ``api`` and ``ui`` never import each other. Tests that need the API
alone call ``api.app.create_app``.
"""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    """The API, the editor's JSON endpoints and the Gradio pages (the editor last, at ``/``)."""
    from api.app import create_app as create_api
    from api.routes import editor
    from ui.app import mount
    from ui.apps_page import mount_apps
    from ui.chat_page import mount_chat
    from ui.conversations_page import mount_conversations
    from ui.evaluations_page import mount_evaluations
    from ui.help_page import mount_help
    from ui.jobs_page import mount_jobs
    from ui.knowledge_page import mount_knowledge
    from ui.models_page import mount_models

    app = create_api()
    mount_chat(app)
    mount_jobs(app)
    mount_knowledge(app)
    mount_evaluations(app)
    mount_conversations(app)
    mount_apps(app)
    mount_models(app)
    mount_help(app)
    app.include_router(editor.router)
    mount(app)
    return app
