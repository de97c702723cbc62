"""What models this installation can use: local folders, the cache, OpenAI-compatible servers, provider keys."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from api.bodies import LimitedRoute
from api.openapi import WRITE, errors
from api.schemas.models import ModelsPublic, ServerPublic
from nodes import models
from stackyard.errors import NotFound
from stackyard.settings import get_settings
from workflows.bounds import Text

router = APIRouter(prefix="/api/v1", tags=["models"], route_class=LimitedRoute, responses=errors(400, 401, 429))


@router.get("/models", response_model=ModelsPublic)
def list_models() -> ModelsPublic:
    """Generators and embedders usable right now, and the default generator chosen from them. Servers are
    probed with a short timeout (a sync route: the probes run in the threadpool, not on the event loop)."""
    found = models.inventory(get_settings())
    return ModelsPublic(local=[asdict(m) for m in found.local], servers=[asdict(s) for s in found.servers],
                        keys=found.keys, default_generator=found.default_generator,
                        hint=None if found.default_generator else models.NO_GENERATOR)


@router.post("/models/servers/{name}/test", response_model=ServerPublic, responses=errors(*WRITE, 404, 422))
def test_server(name: Text) -> ServerPublic:
    """Connect to a configured server now and list its models."""
    settings = get_settings()
    server = models.server_named(settings, name)
    if server is None:
        raise NotFound(models.unknown_server(settings, name))
    return ServerPublic(**asdict(models.probe(server)))
