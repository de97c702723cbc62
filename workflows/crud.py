"""Data access for workflows and versions: keyword-only functions taking a ``session``.

A version is saved only if it validates, so every stored version can be run; the whole change
(workflow row + first version) commits together or not at all. Every write runs through
:func:`store.db.race_safe`: concurrent saves, renames and deletes get 2xx, 404 or 409, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from nodes.catalog import get_node_type
from stackyard.errors import Conflict, NotFound
from store.clock import utcnow
from store.db import race_safe
from workflows import agents
from workflows.errors import Issue, IssueCode, WorkflowInvalid
from workflows.models import Workflow, WorkflowDraft, WorkflowVersion
from workflows.spec import MAX_DOCUMENT_BYTES, WorkflowSpec
from workflows.validation import validate


def needs_gpu(spec: WorkflowSpec) -> bool:
    """True when a node runs a local model that wants a GPU (or is explicitly set to cuda)."""
    for _, type_, params in agents.component_parts(spec):        # an agent's local model counts as much as a node's
        node_type = get_node_type(type_)
        if node_type and node_type.needs_gpu:
            return True
        device = params.get("device")
        if isinstance(device, dict) and "cuda" in str(device):
            return True
    return False


def checked(spec: WorkflowSpec) -> WorkflowSpec:
    issues = validate(spec)
    if issues:
        raise WorkflowInvalid(issues)
    return spec


def list_workflows(session: Session) -> list[Workflow]:
    return list(session.exec(select(Workflow).order_by(Workflow.name)))


def get_workflow(session: Session, *, ref: str) -> Workflow:
    """By id or by name."""
    workflow = session.get(Workflow, ref) or session.exec(select(Workflow).where(Workflow.name == ref)).first()
    if workflow is None:
        raise _no_workflow(ref)
    return workflow


def _no_workflow(ref: str) -> NotFound:
    return NotFound(f"No workflow '{ref}'; list them with GET /api/v1/workflows or `stackyard list`.")


def _name_free(session: Session, name: str, *, except_id: str | None = None) -> None:
    clash = session.exec(select(Workflow).where(Workflow.name == name)).first()
    if clash is not None and clash.id != except_id:
        raise Conflict(f"A workflow named '{name}' already exists; choose another name or save a new version of it.")


def create_workflow(session: Session, *, name: str, description: str = "", spec: WorkflowSpec | None = None,
                    note: str = "") -> Workflow:
    if spec is not None:
        checked(spec)
    return race_safe(session, lambda: _insert_workflow(session, name, description, spec, note),
                     what=f"Creating workflow '{name}'")


def _insert_workflow(session: Session, name: str, description: str, spec: WorkflowSpec | None, note: str,
                     *, check_name: bool = True) -> Workflow:
    if check_name:
        _name_free(session, name)   # a name taken meanwhile fails the flush; race_safe's rerun then lands here
    workflow = Workflow(name=name, description=description)
    session.add(workflow)
    session.flush()
    if spec is not None:
        _insert_version(session, workflow, spec, note)
    return workflow


def rename_workflow(session: Session, *, ref: str, name: str, description: str | None = None) -> Workflow:
    def rename() -> Workflow:
        workflow = get_workflow(session=session, ref=ref)
        _name_free(session, name, except_id=workflow.id)
        workflow.name = name
        if description is not None:
            workflow.description = description
        workflow.updated_at = utcnow()
        session.add(workflow)
        session.flush()
        return workflow

    return race_safe(session, rename, what=f"Renaming workflow '{ref}'")


def delete_workflow(session: Session, *, ref: str) -> None:
    def remove() -> None:
        workflow_id = get_workflow(session=session, ref=ref).id
        if not session.execute(delete(Workflow).where(col(Workflow.id) == workflow_id)).rowcount:
            raise _no_workflow(ref)   # another request deleted it between our read and our delete

    race_safe(session, remove, what=f"Deleting workflow '{ref}'")


def _stored(spec: WorkflowSpec) -> dict[str, Any]:
    """The JSON a version or draft stores, refused past the size a workflow file may have (MAX_DOCUMENT_BYTES):
    a spec built in the editor or sent as JSON gets the same limit as one imported from YAML."""
    data = spec.model_dump(mode="json")
    size = len(json.dumps(data, separators=(",", ":")))
    if size > MAX_DOCUMENT_BYTES:
        raise WorkflowInvalid([Issue(IssueCode.SHAPE, field="spec", message=(
            f"The workflow is {size:,} bytes as JSON; the limit is {MAX_DOCUMENT_BYTES:,}. Move large prompts or "
            "data out of its parameters (e.g. into files under the files root)."))])
    return data


def _insert_version(session: Session, workflow: Workflow, spec: WorkflowSpec, note: str) -> WorkflowVersion:
    # Touch the workflow row first: its lock queues concurrent saves of one workflow, so each reads the
    # number the previous one committed and max + 1 stays unique and gapless without a retry.
    agents.check_no_cycle(spec, workflow.id, workflow.name)
    workflow.updated_at = utcnow()
    session.add(workflow)
    session.flush()
    latest = session.exec(select(func.max(WorkflowVersion.number)).where(WorkflowVersion.workflow_id == workflow.id)).one()
    version = WorkflowVersion(workflow_id=workflow.id, number=(latest or 0) + 1, spec=_stored(spec),
                              note=note, needs_gpu=needs_gpu(spec))
    session.add(version)
    session.flush()
    return version


def create_version(session: Session, *, ref: str, spec: WorkflowSpec, note: str = "") -> WorkflowVersion:
    """Save a new immutable version (number = previous + 1) after validating it."""
    checked(spec)
    return race_safe(session, lambda: _insert_version(session, get_workflow(session=session, ref=ref), spec, note),
                     what=f"Saving a version of workflow '{ref}'")


def save_draft(session: Session, *, ref: str, spec: WorkflowSpec, based_on: int | None = None) -> WorkflowDraft:
    """Keep ``spec`` as the workflow's draft, as it is: the shape is checked (``spec_from_dict``), validation
    problems are kept with it. An upsert: a workflow has one draft."""
    def store() -> WorkflowDraft:
        workflow_id = get_workflow(session=session, ref=ref).id
        draft = session.get(WorkflowDraft, workflow_id) or WorkflowDraft(workflow_id=workflow_id, spec={})
        draft.spec, draft.based_on, draft.updated_at = _stored(spec), based_on, utcnow()
        session.add(draft)
        session.flush()
        return draft

    return race_safe(session, store, what=f"Saving the draft of workflow '{ref}'")


def get_draft(session: Session, *, ref: str) -> WorkflowDraft | None:
    return session.get(WorkflowDraft, get_workflow(session=session, ref=ref).id)


def discard_draft(session: Session, *, ref: str) -> bool:
    """Drop the workflow's draft; whether there was one."""
    workflow_id = get_workflow(session=session, ref=ref).id
    return bool(session.execute(delete(WorkflowDraft).where(col(WorkflowDraft.workflow_id) == workflow_id)).rowcount)


def list_versions(session: Session, *, ref: str) -> list[WorkflowVersion]:
    workflow = get_workflow(session=session, ref=ref)
    query = select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id).order_by(WorkflowVersion.number)
    return list(session.exec(query))


def get_version(session: Session, *, ref: str, number: int | None = None) -> WorkflowVersion:
    """A numbered version of a workflow (by id or name), or its newest when ``number`` is None."""
    return _one_version(session, WorkflowVersion, ref, number)


def as_tool(session: Session, *, ref: str, number: int, name: str, description: str) -> dict[str, Any]:
    """Version ``number`` of a workflow as an agent's tool (``workflows.agents.workflow_tool``): paste it into an
    agent's ``tools``."""
    version = get_version(session=session, ref=ref, number=number)
    return agents.workflow_tool(name, description, version_spec(version), workflow_id=version.workflow_id,
                                version=version.number)


def get_version_id(session: Session, *, ref: str, number: int | None = None) -> str:
    """The id alone of what :func:`get_version` finds: no spec is read (the run hot path caches specs by id)."""
    return _one_version(session, WorkflowVersion.id, ref, number)


def _one_version(session: Session, what: Any, ref: str, number: int | None) -> Any:
    query = (select(what).join(Workflow, Workflow.id == WorkflowVersion.workflow_id)
             .where((Workflow.id == ref) | (Workflow.name == ref)))
    if number is None:
        query = query.order_by(WorkflowVersion.number.desc())
    else:
        query = query.where(WorkflowVersion.number == number)
    found = session.exec(query.limit(1)).first()
    if found is None:
        workflow = get_workflow(session=session, ref=ref)
        which = f"version {number}" if number is not None else "any version"
        raise NotFound(f"Workflow '{workflow.name}' has no {which}; save one first or list them with GET .../versions.")
    return found


def get_version_by_id(session: Session, *, version_id: str) -> WorkflowVersion:
    version = session.get(WorkflowVersion, version_id)
    if version is None:
        raise NotFound(f"No workflow version '{version_id}'.")
    return version


def version_spec(version: WorkflowVersion) -> WorkflowSpec:
    return WorkflowSpec.model_validate(version.spec)


def import_definition(session: Session, *, spec: WorkflowSpec, name: str, note: str = "imported") -> WorkflowVersion:
    """Store an imported definition: a new workflow, or a new version if ``name`` exists."""
    checked(spec)

    def store() -> WorkflowVersion:
        existing = session.exec(select(Workflow).where(Workflow.name == name)).first()
        # No name check: one committed since the select above must fail the insert (and be found by the
        # rerun), not answer 409 for a name this import is meant to add a version to.
        workflow = existing or _insert_workflow(session, name, "", None, "", check_name=False)
        return _insert_version(session, workflow, spec, note)

    # Two imports of one new name: the second's insert of the workflow fails, its rerun finds the first's.
    return race_safe(session, store, what=f"Importing workflow '{name}'")
