"""The ASGI app: the HTTP API, with the web UI mounted into it when available."""

from __future__ import annotations

from fastapi import FastAPI

from api import auth, errors, guard, methods, metrics
from api.routes import apps, health, jobs, openai_compat, runs, workflows


def create_app(*, with_ui: bool = True) -> FastAPI:
    from store.db import migrate

    migrate()
    app = FastAPI(title="Stackyard", version="0.1.0", description="Build, run and serve Haystack workflows.")
    errors.install(app)
    auth.install(app)  # login when STACKYARD_ADMIN_PASSWORD is set; before the UI so /login is not shadowed
    guard.install(app)  # outside the login check: a cross-site or wrong-host request is refused, logged in or not
    metrics.install(app)  # last middleware added = outermost: times every request, /metrics before the UI
    app.include_router(health.router)
    app.include_router(workflows.router)
    app.include_router(runs.router)
    app.include_router(apps.router)
    app.include_router(openai_compat.router)
    app.include_router(jobs.router)
    methods.install(app)  # 405 for undeclared methods on API paths, before the UI mounted at "/" takes them
    if with_ui:
        from ui.apps_page import mount_apps
        from ui.chat_page import mount_chat
        from ui.jobs_page import mount_jobs

        mount_chat(app)  # before the editor, which is mounted at "/"
        mount_jobs(app)
        mount_apps(app)
        try:
            from ui.app import mount
        except ImportError:
            pass
        else:
            mount(app)
    return app
