"""The HTTP API as a FastAPI app; ``stackyard.web`` mounts the pages into it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from api import auth, errors, guard, methods, metrics
from api.bodies import GradioBodyLimit
from api.routes import (
    apps,
    conversations,
    evaluations,
    health,
    jobs,
    knowledge,
    mcp,
    models,
    openai_compat,
    runs,
    workflows,
)


def create_app() -> FastAPI:
    from store.db import migrate

    migrate()
    tools = mcp.McpEndpoint()     # published apps as MCP tools, served while the app runs

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with tools.running():
            yield

    app = FastAPI(title="Stackyard", version="0.1.0", description="Build, run and serve Haystack workflows.",
                  lifespan=lifespan)
    errors.install(app)
    app.state.gradio_uploads = {}  # page path -> largest upload it takes (ui.pages.mount_page fills it)
    app.add_middleware(GradioBodyLimit, uploads=app.state.gradio_uploads)  # inside the login: strangers' bodies unread
    auth.install(app)  # login when STACKYARD_ADMIN_PASSWORD is set; before the UI so /login is not shadowed
    guard.install(app)  # outside the login check: a cross-site or wrong-host request is refused, logged in or not
    metrics.install(app)  # last middleware added = outermost: times every request, /metrics before the UI
    app.include_router(health.router)
    app.include_router(workflows.router)
    app.include_router(runs.router)
    app.include_router(apps.router)
    app.include_router(openai_compat.router)
    app.include_router(jobs.router)
    app.include_router(models.router)
    app.include_router(knowledge.router)
    app.include_router(evaluations.router)
    app.include_router(conversations.router)
    app.mount(mcp.MCP_PATH, tools)
    methods.install(app)  # 405 for undeclared methods on API paths, before the UI mounted at "/" takes them
    return app
