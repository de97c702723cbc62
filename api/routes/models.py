"""What this installation can use: models (local folders, the cache, OpenAI-compatible servers, provider keys)
and the vector store's collections."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from api.bodies import LimitedRoute
from api.openapi import WRITE, errors
from api.schemas.models import CollectionsPublic, ModelsPublic, ServerPublic
from nodes import models, stores
from stackyard.errors import NotFound, StackyardError
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


class VectorStoreDown(StackyardError):
    status = 503


@router.get("/collections", response_model=CollectionsPublic, tags=["stores"],
            responses=errors(503, why={503: "The vector store cannot be reached (STACKYARD_MILVUS_URI)."}))
def list_collections() -> CollectionsPublic:
    """The vector store's collections, for a retriever's or writer's store (a sync route: it may start
    milvus-lite, in the threadpool)."""
    try:
        return CollectionsPublic(collections=stores.list_collections(get_settings()))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the store is the same answer
        raise VectorStoreDown(f"The vector store cannot be reached ({type(exc).__name__}: {exc}); check "
                              "STACKYARD_MILVUS_URI, or the milvus-lite log under the data folder.") from None
