"""Workflows, versions, import/export, validation and the node catalog."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api.bodies import LimitedRoute
from api.deps import SessionDep
from api.openapi import BODY, PIPELINE, WRITE, errors, request_body
from api.schemas.workflows import (
    ValidationResult,
    VersionCreate,
    VersionPublic,
    WorkflowCreate,
    WorkflowPublic,
    WorkflowUpdate,
)
from stackyard.redact import redact_data
from workflows import crud
from workflows.agents import MAX_DESCRIPTION, TOOL_NAME
from workflows.availability import warnings
from workflows.bounds import NO_NUL, PositiveInt32, Text
from workflows.errors import WorkflowInvalid
from workflows.io import as_imported, export_yaml, import_document, neutral
from workflows.models import Workflow
from workflows.spec import load_document, spec_from_dict
from workflows.validation import validate

router = APIRouter(prefix="/api/v1", tags=["workflows"], route_class=LimitedRoute, responses=errors(400, 401, 429))


def _public(session, workflow: Workflow) -> WorkflowPublic:
    from apps.publishing import live_version_numbers

    versions = crud.list_versions(session=session, ref=workflow.id)
    return WorkflowPublic(**workflow.model_dump(), latest_version=versions[-1].number if versions else None,
                          published=live_version_numbers(session=session, workflow_id=workflow.id))


@router.get("/workflows", response_model=list[WorkflowPublic])
def list_workflows(session: SessionDep) -> list[WorkflowPublic]:
    return [_public(session, workflow) for workflow in crud.list_workflows(session=session)]


@router.post("/workflows", response_model=WorkflowPublic, status_code=status.HTTP_201_CREATED, responses=errors(*BODY, 409))
def create_workflow(body: WorkflowCreate, session: SessionDep) -> WorkflowPublic:
    spec = neutral(spec_from_dict(body.spec)) if body.spec is not None else None
    workflow = crud.create_workflow(session=session, name=body.name, description=body.description, spec=spec, note=body.note)
    return _public(session, workflow)


@router.get("/workflows/{ref}", response_model=WorkflowPublic, responses=errors(404, 422))
def get_workflow(ref: Text, session: SessionDep) -> WorkflowPublic:
    return _public(session, crud.get_workflow(session=session, ref=ref))


@router.patch("/workflows/{ref}", response_model=WorkflowPublic, responses=errors(*BODY, 404, 409))
def rename_workflow(ref: Text, body: WorkflowUpdate, session: SessionDep) -> WorkflowPublic:
    return _public(session, crud.rename_workflow(session=session, ref=ref, name=body.name, description=body.description))


@router.delete("/workflows/{ref}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(*WRITE, 404, 409, 422))
def delete_workflow(ref: Text, session: SessionDep) -> Response:
    crud.delete_workflow(session=session, ref=ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/workflows/{ref}/versions", response_model=list[VersionPublic], responses=errors(404, 422))
def list_versions(ref: Text, session: SessionDep) -> list[VersionPublic]:
    return [VersionPublic(**v.model_dump()) for v in crud.list_versions(session=session, ref=ref)]


@router.post("/workflows/{ref}/versions", response_model=VersionPublic, status_code=status.HTTP_201_CREATED,
             responses=errors(*BODY, 404, 409))
def create_version(ref: Text, body: VersionCreate, session: SessionDep) -> VersionPublic:
    version = crud.create_version(session=session, ref=ref, spec=neutral(spec_from_dict(body.spec)), note=body.note)
    return VersionPublic(**version.model_dump())


@router.get("/workflows/{ref}/versions/{number}", response_model=VersionPublic, responses=errors(404, 422))
def get_version(ref: Text, number: PositiveInt32, session: SessionDep) -> VersionPublic:
    return VersionPublic(**crud.get_version(session=session, ref=ref, number=number).model_dump())


@router.get("/workflows/{ref}/versions/{number}/tool", responses=errors(404, 422))
def version_as_tool(ref: Text, number: PositiveInt32, session: SessionDep,
                    name: str = Query(pattern=TOOL_NAME.pattern, description="What the model calls the tool by."),
                    description: str = Query(max_length=MAX_DESCRIPTION, pattern=NO_NUL,
                                             description="When the model should use it.")) -> dict[str, Any]:
    """This version as an agent's tool (a Haystack ``PipelineTool`` with the workflow copied in): add it to an Agent
    node's ``tools``. Its declared inputs are the tool's arguments, its declared outputs what the model reads."""
    return crud.as_tool(session=session, ref=ref, number=number, name=name, description=description)


async def _definition(request: Request) -> dict[str, Any]:
    raw = await request.body()  # at most STACKYARD_MAX_BODY_BYTES (api.bodies)
    # Parsing and everything after it is CPU work: off the event loop, so other requests keep flowing.
    return await run_in_threadpool(load_document, raw)


_YAML_BODY = Body(media_type="application/yaml", description="A Haystack or Hayhooks pipeline in YAML or JSON.")


@router.post("/workflows/import", response_model=VersionPublic, status_code=status.HTTP_201_CREATED,
             responses=errors(403, 409, 413, 415, 422), openapi_extra=request_body({"application/yaml": PIPELINE}))
async def import_workflow(request: Request, session: SessionDep,
                          name: str = Query(min_length=1, max_length=200, pattern=NO_NUL,
                                            description="Workflow name; an existing name gets a new version."),
                          note: str = Query(default="imported", max_length=2000, pattern=NO_NUL)) -> VersionPublic:
    spec = await run_in_threadpool(import_document, await _definition(request))
    version = await run_in_threadpool(crud.import_definition, session=session, spec=spec, name=name, note=note)
    return VersionPublic(**version.model_dump())


@router.get("/workflows/{ref}/export", response_class=Response, responses={
    200: {"description": "Haystack YAML; loads with Pipeline.loads()", "content": {"application/yaml": {"schema": PIPELINE}}},
    **errors(404, 422)})
def export_workflow(ref: Text, session: SessionDep, version: PositiveInt32 | None = Query(
                        default=None, description="Default: the newest version")) -> PlainTextResponse:
    row = crud.get_version(session=session, ref=ref, number=version)
    workflow = crud.get_workflow(session=session, ref=ref)
    return PlainTextResponse(export_yaml(crud.version_spec(row)), media_type="application/yaml", headers={
        "Content-Disposition": f'attachment; filename="{workflow.name}-v{row.number}.yaml"'})


def _report(data: dict[str, Any]) -> tuple[list, list]:
    """The issues and warnings of what an import of ``data`` would store (one trip to the threadpool)."""
    spec = as_imported(data)
    return validate(spec), warnings(spec)


@router.post("/validate", response_model=ValidationResult, responses=errors(403, 413, 415),
             # Any body gets a report, an unparsable or missing one too (valid: false, a parse_error issue).
             openapi_extra=request_body({"application/yaml": {"description": PIPELINE["description"]}}, required=False))
async def validate_definition(request: Request) -> ValidationResult:
    try:
        issues, warnings = await run_in_threadpool(_report, await _definition(request))
    except WorkflowInvalid as exc:
        issues, warnings = exc.issues, []
    return ValidationResult(valid=not issues, issues=redact_data([issue.to_dict() for issue in issues]),
                            warnings=redact_data([warning.to_dict() for warning in warnings]))


@router.get("/nodes")
def node_catalog() -> list[dict[str, Any]]:
    from workflows.palette import describe_catalog

    return describe_catalog()


@router.post("/nodes/ports", responses=errors(*BODY))
def node_ports(type: str = Body(embed=True), params: dict[str, Any] = Body(default_factory=dict, embed=True)) -> dict:
    from workflows.build import ComponentBuildError
    from workflows.palette import ports

    try:
        return ports(type, params)
    except ComponentBuildError as exc:
        raise WorkflowInvalid(exc.issues) from None
