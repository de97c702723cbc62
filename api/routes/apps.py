"""Publishing and API keys (management), and the REST endpoint of published apps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.bodies import LimitedRoute
from api.deps import SessionDep
from api.openapi import API_KEY, BODY, KEY_WHY, WRITE, errors, request_body, schema_of
from api.routes.runs import FINISHED, snapshot, wait_for
from api.schemas.apps import (
    AppRunRequest,
    GateWaiting,
    KeyCreate,
    KeyCreated,
    KeyPublic,
    PublicationPublic,
    PublishRequest,
)
from api.schemas.runs import RunPublic
from apps import chat, checks, keys, limits, publishing
from apps.gating import GatePending
from apps.models import ApiKey
from conversations import threads
from conversations.memory import Memory
from runs import lifecycle as runs
from store.db import autocommit_scope
from worker import batch
from workflows.bounds import Text

router = APIRouter(prefix="/api/v1", tags=["apps"], route_class=LimitedRoute, responses=errors(400, 401, 429))


def _publication_public(session, publication) -> PublicationPublic:
    from workflows.models import WorkflowVersion

    version = session.get(WorkflowVersion, publication.version_id)
    return PublicationPublic(**publication.model_dump(), version=version.number if version else None)


@router.get("/publications", response_model=list[PublicationPublic])
def list_publications(session: SessionDep) -> list[PublicationPublic]:
    return [_publication_public(session, p) for p in publishing.list_publications(session=session)]


@router.post("/publications", response_model=PublicationPublic, status_code=status.HTTP_201_CREATED,
             responses={**errors(*BODY, 404, 409, why={
                 422: "A body field is invalid, a chat role is missing, or the version failed its publish check "
                      "(field 'check').",
                 409: "The version did not pass the app's gate (field 'gate': the report says which checks)."}),
                 202: {"model": GateWaiting, "description": "The gate's evaluations run first; nothing changed yet. "
                                                            "Publish again when they are done."}})
def publish(body: PublishRequest, session: SessionDep) -> Any:
    """Serve a version as a chat app, after it passed the app's gate (an evaluation on its test set, when the app
    has one) and answered a test message on a worker (``check``)."""
    given = {"message": body.message, "history": body.history, "reply": body.reply, "sources": body.sources}
    outcome, _ = checks.publish_checked(session, ref=body.workflow, slug=body.slug, version=body.version,
                                        given=given, check=body.check, force=body.force,
                                        message=body.check_message, max_concurrency=body.max_concurrency,
                                        gate=body.gate, override=body.override_reason)
    if isinstance(outcome, GatePending):      # the evaluations it started are committed: send their jobs
        for job_id in outcome.jobs:
            batch.dispatch(job_id)
        return JSONResponse(status_code=status.HTTP_202_ACCEPTED, content=GateWaiting(
            message=outcome.message, evaluations=[e.id for e in outcome.evaluations]).model_dump())
    return _publication_public(session, outcome)


@router.put("/publications/{slug}/memory", response_model=PublicationPublic, responses=errors(*BODY, 404))
def set_memory(slug: Text, body: Memory, session: SessionDep) -> PublicationPublic:
    """What the app remembers of a conversation: the last ``turns`` turns, or the recent turns within ``tokens``
    (about 4 characters a token); the workflow gets them on its declared history input."""
    return _publication_public(session, publishing.set_memory(session, slug, body.model_dump()))


@router.delete("/publications/{slug}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(*WRITE, 404, 409, 422))
def unpublish(slug: Text, session: SessionDep) -> Response:
    publishing.unpublish(session=session, slug=slug)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/keys", response_model=list[KeyPublic])
def list_keys(session: SessionDep) -> list[KeyPublic]:
    return [KeyPublic(**row.model_dump()) for row in keys.list_keys(session=session)]


@router.post("/keys", response_model=KeyCreated, status_code=status.HTTP_201_CREATED, responses=errors(*BODY, 404))
def create_key(body: KeyCreate, session: SessionDep) -> KeyCreated:
    if body.app is not None:
        publishing.get_publication(session=session, slug=body.app)
    row, key = keys.create_key(session=session, name=body.name, app_slug=body.app, rate_per_minute=body.rate_per_minute)
    return KeyCreated(**row.model_dump(), key=key)


@router.delete("/keys/{key_id}", response_model=KeyPublic, responses=errors(*WRITE, 404, 409, 422))
def revoke_key(key_id: Text, session: SessionDep) -> KeyPublic:
    return KeyPublic(**keys.revoke_key(session=session, key_id=key_id).model_dump())


def authenticated(authorization: str | None) -> ApiKey:
    """The caller's key (401 first, before the body is even read)."""
    with autocommit_scope() as session:  # one lookup (and a last-used stamp at most once a minute)
        return keys.authenticate(session=session, authorization=authorization)


def admit(key: ApiKey, slug: str | None) -> None:
    """Check the key's scope and rate (403/429)."""
    if slug is not None:
        keys.authorize(key, slug)
    limits.check_rate(key.id, key.rate_per_minute)


VISITOR_HEADER = "X-Stackyard-Visitor"
VISITOR_ID = r"^[0-9a-f]{32}$"
WIDGET_HEADER = "X-Stackyard-Widget"


def chat_owner(key: ApiKey, slug: str, *, visitor: str | None, widget: str | None) -> str:
    """Whose conversations a chat request reads and writes: the key's, or one visitor's of the key (the widget
    sends an opaque visitor id of its own, so visitors sharing the widget's key never see each other's). The
    widget's requests need a key scoped to this one app (the key is on a public page)."""
    if widget is not None and key.app_slug != slug:
        raise keys.Forbidden(f"API key {key.prefix}… is not scoped to app '{slug}' alone: a widget puts its key on a "
                             "public page, so give it a key made for this app (POST /api/v1/keys with app).")
    if visitor is None:
        return threads.key_owner(key.id)
    if len(visitor) != 32 or any(c not in "0123456789abcdef" for c in visitor):
        raise chat.BadChatRequest(f"{VISITOR_HEADER} must be 32 hex digits (the widget makes one).",
                                  field=VISITOR_HEADER)
    return f"{threads.key_owner(key.id)}/{threads.visitor_owner(visitor)}"


def caller(authorization: str | None, slug: str | None) -> ApiKey:
    key = authenticated(authorization)
    admit(key, slug)
    return key


@router.post("/apps/{slug}/run", response_model=RunPublic, status_code=status.HTTP_202_ACCEPTED, dependencies=[API_KEY],
             responses={200: FINISHED, **errors(*BODY, 401, 404, 429, 503, why=KEY_WHY)},
             openapi_extra=request_body({"application/json": schema_of(AppRunRequest)}, required=False))
async def run_app(slug: Text, request: Request, response: Response,
                  authorization: str | None = Header(default=None, include_in_schema=False)) -> RunPublic:
    await run_in_threadpool(caller, authorization, slug)
    body = AppRunRequest.model_validate(await request.json() if await request.body() else {})
    run_id, slot = await run_in_threadpool(chat.open_run, slug, body.inputs)
    with slot:
        if body.wait:
            await wait_for(run_id, body.wait)
    result = await run_in_threadpool(snapshot, run_id)
    if result.state in runs.TERMINAL_STATES:
        response.status_code = status.HTTP_200_OK
    return result
