"""Workflows, versions, import/export, validation and the node catalog."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api.bodies import LimitedRoute
from api.deps import SessionDep
from api.schemas import ValidationResult, VersionCreate, VersionPublic, WorkflowCreate, WorkflowPublic, WorkflowUpdate
from stackyard.redact import redact_data
from workflows import crud
from workflows.errors import WorkflowInvalid
from workflows.io import export_yaml, import_document, neutral
from workflows.models import Workflow
from workflows.spec import load_document, spec_from_dict
from workflows.validation import validate

router = APIRouter(prefix="/api/v1", tags=["workflows"], route_class=LimitedRoute)


def _public(session, workflow: Workflow) -> WorkflowPublic:
    from workflows.publishing import live_version_numbers

    versions = crud.list_versions(session=session, ref=workflow.id)
    return WorkflowPublic(**workflow.model_dump(), latest_version=versions[-1].number if versions else None,
                          published=live_version_numbers(session=session, workflow_id=workflow.id))


@router.get("/workflows", response_model=list[WorkflowPublic])
def list_workflows(session: SessionDep) -> list[WorkflowPublic]:
    return [_public(session, workflow) for workflow in crud.list_workflows(session=session)]


@router.post("/workflows", response_model=WorkflowPublic, status_code=status.HTTP_201_CREATED)
def create_workflow(body: WorkflowCreate, session: SessionDep) -> WorkflowPublic:
    spec = neutral(spec_from_dict(body.spec)) if body.spec is not None else None
    workflow = crud.create_workflow(session=session, name=body.name, description=body.description, spec=spec, note=body.note)
    return _public(session, workflow)


@router.get("/workflows/{ref}", response_model=WorkflowPublic)
def get_workflow(ref: str, session: SessionDep) -> WorkflowPublic:
    return _public(session, crud.get_workflow(session=session, ref=ref))


@router.patch("/workflows/{ref}", response_model=WorkflowPublic)
def rename_workflow(ref: str, body: WorkflowUpdate, session: SessionDep) -> WorkflowPublic:
    return _public(session, crud.rename_workflow(session=session, ref=ref, name=body.name, description=body.description))


@router.delete("/workflows/{ref}", status_code=status.HTTP_204_NO_CONTENT)
def delete_workflow(ref: str, session: SessionDep) -> Response:
    crud.delete_workflow(session=session, ref=ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/workflows/{ref}/versions", response_model=list[VersionPublic])
def list_versions(ref: str, session: SessionDep) -> list[VersionPublic]:
    return [VersionPublic(**v.model_dump()) for v in crud.list_versions(session=session, ref=ref)]


@router.post("/workflows/{ref}/versions", response_model=VersionPublic, status_code=status.HTTP_201_CREATED)
def create_version(ref: str, body: VersionCreate, session: SessionDep) -> VersionPublic:
    version = crud.create_version(session=session, ref=ref, spec=neutral(spec_from_dict(body.spec)), note=body.note)
    return VersionPublic(**version.model_dump())


@router.get("/workflows/{ref}/versions/{number}", response_model=VersionPublic)
def get_version(ref: str, number: int, session: SessionDep) -> VersionPublic:
    return VersionPublic(**crud.get_version(session=session, ref=ref, number=number).model_dump())


async def _definition(request: Request) -> dict[str, Any]:
    raw = await request.body()  # at most STACKYARD_MAX_BODY_BYTES (api.bodies)
    # Parsing and everything after it is CPU work: off the event loop, so other requests keep flowing.
    return await run_in_threadpool(load_document, raw)


_YAML_BODY = Body(media_type="application/yaml", description="A Haystack or Hayhooks pipeline in YAML or JSON.")


@router.post("/workflows/import", response_model=VersionPublic, status_code=status.HTTP_201_CREATED,
             openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}, "required": True}})
async def import_workflow(request: Request, session: SessionDep,
                          name: str = Query(min_length=1, max_length=200, description="Workflow name; an existing name gets a new version."),
                          note: str = Query(default="imported", max_length=2000)) -> VersionPublic:
    spec = await run_in_threadpool(import_document, await _definition(request))
    version = await run_in_threadpool(crud.import_definition, session=session, spec=spec, name=name, note=note)
    return VersionPublic(**version.model_dump())


@router.get("/workflows/{ref}/export", response_class=PlainTextResponse)
def export_workflow(ref: str, session: SessionDep, version: int | None = Query(default=None, ge=1)) -> PlainTextResponse:
    row = crud.get_version(session=session, ref=ref, number=version)
    workflow = crud.get_workflow(session=session, ref=ref)
    return PlainTextResponse(export_yaml(crud.version_spec(row)), media_type="application/yaml", headers={
        "Content-Disposition": f'attachment; filename="{workflow.name}-v{row.number}.yaml"'})


@router.post("/validate", response_model=ValidationResult,
             openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}, "required": True}})
async def validate_definition(request: Request) -> ValidationResult:
    try:
        spec = await run_in_threadpool(spec_from_dict, await _definition(request))
        issues = await run_in_threadpool(validate, spec)
    except WorkflowInvalid as exc:
        issues = exc.issues
    return ValidationResult(valid=not issues, issues=redact_data([issue.to_dict() for issue in issues]))


@router.get("/nodes")
def node_catalog() -> list[dict[str, Any]]:
    from nodes.schema import describe_catalog

    return describe_catalog()


@router.post("/nodes/ports")
def node_ports(type: str = Body(embed=True), params: dict[str, Any] = Body(default_factory=dict, embed=True)) -> dict:
    from nodes.schema import ports
    from workflows.build import ComponentBuildError

    try:
        return ports(type, params)
    except ComponentBuildError as exc:
        raise WorkflowInvalid(exc.issues) from None
