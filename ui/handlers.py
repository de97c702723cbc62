"""The editor's server functions: what the canvas JS calls as ``await server.<name>({...})``.

Each takes ONE JSON object (Gradio passes a single argument) and returns a JSON object. They call the
same domain functions as the HTTP API (``workflows.crud``, the validator, import/export), and this
module is the UI transport's one error boundary: a domain error comes back as
``{"error": {"message", "type", "issues"?}}`` (by exception class, as ``api.errors`` does for HTTP), with
secret values masked (:mod:`stackyard.redact`), as are the issues a validation returns.

Runs are not here: the canvas starts and follows them through the run API (``/api/v1/.../runs``), the
same Celery path every client uses.

Example (no browser needed)::

    opened = create_workflow({"name": "demo", "template": "summarize"})
    opened["spec"]["components"]["prompt"]["type"]      # 'haystack.components.builders.prompt_builder.PromptBuilder'
    save_version({"ref": "demo", "spec": opened["spec"], "note": "tweak"})["version"]["number"]   # 2
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import ValidationError

from apps import publishing
from nodes.models import inventory
from stackyard.errors import StackyardError
from stackyard.redact import redact_data
from stackyard.settings import get_settings
from store.db import session_scope
from ui.fields import whole_number
from workflows import crud, graph
from workflows.agents import check_no_cycle
from workflows.availability import warnings as availability_warnings
from workflows.bounds import INT32_MAX
from workflows.errors import Issue, IssueCode, WorkflowInvalid
from workflows.io import import_text, neutral
from workflows.spec import spec_from_dict
from workflows.templates import starter, template_names, template_path
from workflows.validation import validate as run_validator

Payload = dict[str, Any]


def _error(exc: Exception) -> Payload:
    if isinstance(exc, WorkflowInvalid):
        error = {"message": str(exc), "type": type(exc).__name__, "issues": graph.issues_payload(exc.issues)}
    elif isinstance(exc, ValidationError):
        error = {"message": str(exc.errors()[0]["msg"]) if exc.errors() else str(exc), "type": "RequestInvalid"}
    else:
        error = {"message": str(exc), "type": type(exc).__name__, "field": getattr(exc, "field", None)}
    return {"error": redact_data(error)}


def _issues(issues: list[Issue]) -> list[Payload]:
    """Issues as the canvas pins them, secret values masked: a message may quote what it was given (as the
    HTTP API's error bodies and validate answers are masked)."""
    return redact_data(graph.issues_payload(issues))


def server_function(fn: Callable[[Payload], Payload]) -> Callable[[Payload], Payload]:
    """Turn domain errors into an ``error`` payload; anything else is a bug and propagates."""

    @functools.wraps(fn)
    def wrapper(request: Payload | None = None) -> Payload:
        try:
            return fn(request if isinstance(request, dict) else {})
        except (StackyardError, ValidationError, KeyError) as exc:
            return _error(exc)

    return wrapper


def _required(request: Payload, key: str) -> Any:
    value = request.get(key)
    if value in (None, ""):
        raise WorkflowInvalid([Issue(IssueCode.SHAPE, field=key, message=f"'{key}' is required.")])
    return value


def _workflow_row(session, workflow) -> Payload:
    versions = crud.list_versions(session=session, ref=workflow.id)
    return {**workflow.model_dump(mode="json"), "latest_version": versions[-1].number if versions else None}


def _version_row(version) -> Payload:
    return {"number": version.number, "note": version.note, "created_at": version.created_at.isoformat(),
            "needs_gpu": version.needs_gpu}


def _opened(session, ref: str, number: int | None = None) -> Payload:
    """A workflow as the canvas opens it: its spec, every node's ports and its version list."""
    workflow = crud.get_workflow(session=session, ref=ref)
    versions = crud.list_versions(session=session, ref=workflow.id)
    spec: Payload = {"components": {}, "connections": [], "inputs": {}, "outputs": {}, "metadata": {}}
    current = None
    if versions:
        row = next((v for v in versions if v.number == number), None) if number else versions[-1]
        if row is None:
            row = crud.get_version(session=session, ref=workflow.id, number=number)  # raises NotFound
        current, spec = _version_row(row), row.spec
    live = publishing.live_version_numbers(session=session, workflow_id=workflow.id) if versions else {}
    parsed = spec_from_dict(spec)
    opened = {"workflow": {**workflow.model_dump(mode="json"),
                           "latest_version": versions[-1].number if versions else None, "published": live},
              "version": current, "spec": spec, "ports": graph.spec_ports(parsed),
              "versions": [_version_row(v) for v in reversed(versions)]}
    draft = crud.get_draft(session=session, ref=workflow.id) if number is None else None
    if draft is not None:  # unfinished work opens instead of the newest version, with its problems
        drafted = spec_from_dict(draft.spec)
        opened["draft"] = {"spec": draft.spec, "ports": graph.spec_ports(drafted), "based_on": draft.based_on,
                           "saved_at": draft.updated_at.isoformat(),
                           "issues": _issues(run_validator(drafted))}
    return opened


def _template_title(name: str) -> Payload:
    data = yaml.safe_load(template_path(name).read_text()) or {}
    meta = data.get("metadata") or {}
    return {"name": name, "title": meta.get("title") or name.replace("_", " ").title(),
            "description": meta.get("description", "")}


_catalog: list[Payload] | None = None
_catalog_lock = threading.Lock()


def catalog() -> list[Payload]:
    """The palette with each node type's default ports, so a dropped node draws at once.

    Built once per process (it imports every node's module: seconds); :func:`warm_up` starts that early.
    """
    global _catalog
    with _catalog_lock:
        if _catalog is None:
            from workflows.palette import describe_catalog

            _catalog = [{**entry, "ports": graph.node_ports(entry["type"], entry["defaults"])} for entry in describe_catalog()]
        return _catalog


def warm_up() -> None:
    """Build the catalog in the background, so the first editor page after a start does not wait for it."""
    threading.Thread(target=catalog, name="editor-catalog-warm-up", daemon=True).start()


@server_function
def bootstrap(request: Payload) -> Payload:
    from nodes.catalog import CATEGORIES
    from stackyard.settings import get_settings

    with session_scope() as session:
        workflows = [_workflow_row(session, w) for w in crud.list_workflows(session=session)]
    return {"catalog": catalog(), "categories": list(CATEGORIES), "workflows": workflows,
            "templates": [_template_title(name) for name in template_names()],
            "login": bool(get_settings().admin_password)}


@server_function
def list_workflows(request: Payload) -> Payload:
    with session_scope() as session:
        return {"workflows": [_workflow_row(session, w) for w in crud.list_workflows(session=session)]}


@server_function
def open_workflow(request: Payload) -> Payload:
    with session_scope() as session:
        return _opened(session, _required(request, "ref"), whole_number(request.get("version"), field="version",
                                                                         high=INT32_MAX))


@server_function
def create_workflow(request: Payload) -> Payload:
    """A blank workflow, or one whose first version is a starter template."""
    name, template = str(_required(request, "name")).strip(), request.get("template")
    generator = inventory(get_settings()).default_generator if template else None
    spec = starter(template, generator) if template else None
    note = f"from template {template}" + (f", generator from {generator['from']}" if generator else "") if template else ""
    with session_scope() as session:
        workflow = crud.create_workflow(session=session, name=name, description=str(request.get("description", "")),
                                        spec=spec, note=note)
        return _opened(session, workflow.id)


@server_function
def rename_workflow(request: Payload) -> Payload:
    with session_scope() as session:
        workflow = crud.rename_workflow(session=session, ref=_required(request, "ref"), name=str(_required(request, "name")).strip())
        return {"workflow": _workflow_row(session, workflow)}


@server_function
def delete_workflow(request: Payload) -> Payload:
    with session_scope() as session:
        crud.delete_workflow(session=session, ref=_required(request, "ref"))
    return {"deleted": request["ref"]}


@server_function
def save_draft(request: Payload) -> Payload:
    """Keep the canvas as the workflow's draft, whatever its problems (the editor calls this a moment after
    each change); validation problems do not stop it, a malformed shape does."""
    spec = neutral(spec_from_dict(_required(request, "spec")))
    based_on = request.get("based_on")
    with session_scope() as session:
        draft = crud.save_draft(session=session, ref=_required(request, "ref"), spec=spec,
                                based_on=based_on if isinstance(based_on, int) else None)
        return {"saved_at": draft.updated_at.isoformat()}


@server_function
def discard_draft(request: Payload) -> Payload:
    """Drop the draft and open the newest version again."""
    ref = _required(request, "ref")
    with session_scope() as session:
        crud.discard_draft(session=session, ref=ref)
        return _opened(session, ref)


@server_function
def save_version(request: Payload) -> Payload:
    """Validate and store the canvas as version N+1 (nothing is stored when it has problems); the draft it
    came from is then cleared, in the same transaction."""
    spec = neutral(spec_from_dict(_required(request, "spec")))
    with session_scope() as session:
        version = crud.create_version(session=session, ref=_required(request, "ref"), spec=spec,
                                      note=str(request.get("note") or "")[:2000])
        crud.discard_draft(session=session, ref=version.workflow_id)
        versions = crud.list_versions(session=session, ref=version.workflow_id)
        saved = {"version": _version_row(version), "versions": [_version_row(v) for v in reversed(versions)]}
    # After the commit: the cache scan (and maybe a hub probe) must not hold the database's write lock.
    return {**saved, "warnings": _issues(availability_warnings(spec))}


@server_function
def history(request: Payload) -> Payload:
    """Every version, newest first, with what it changed against the one before."""
    with session_scope() as session:
        versions = crud.list_versions(session=session, ref=_required(request, "ref"))
        rows, previous = [], None
        for version in versions:
            rows.append({**_version_row(version), "changes": graph.spec_diff(previous, version.spec)})
            previous = version.spec
    return {"versions": list(reversed(rows))}


@server_function
def compare_versions(request: Payload) -> Payload:
    """What changed from version ``before`` to version ``after`` (any two, either order)."""
    ref = _required(request, "ref")
    numbers = [whole_number(_required(request, key), field=key, high=INT32_MAX) for key in ("before", "after")]
    with session_scope() as session:
        before, after = (crud.get_version(session=session, ref=ref, number=n) for n in numbers)
        return {"before": before.number, "after": after.number, "changes": graph.spec_diff(before.spec, after.spec)}


@server_function
def restore_version(request: Payload) -> Payload:
    """Save an old version's spec as the newest version (saved versions never change)."""
    ref, number = _required(request, "ref"), whole_number(_required(request, "number"), field="number", high=INT32_MAX)
    with session_scope() as session:
        old = crud.get_version(session=session, ref=ref, number=number)
        crud.create_version(session=session, ref=ref, spec=crud.version_spec(old), note=f"restored version {number}")
        crud.discard_draft(session=session, ref=ref)  # the editor asked first: restoring drops unsaved changes
        return _opened(session, ref)


@server_function
def import_yaml(request: Payload) -> Payload:
    """Import a Haystack (or Hayhooks) YAML file: a new workflow, or a new version of an existing name."""
    name = str(_required(request, "name")).strip()
    spec = import_text(str(_required(request, "text")))
    with session_scope() as session:
        version = crud.import_definition(session=session, spec=spec, name=name, note=str(request.get("note") or "imported"))
        return _opened(session, version.workflow_id, version.number)  # the imported version, not a draft


@server_function
def validate(request: Payload) -> Payload:
    warnings: list = []
    try:
        spec = spec_from_dict(_required(request, "spec"))
        issues = run_validator(spec)
        warnings = availability_warnings(spec)
        if not issues and isinstance(request.get("workflow"), str):     # would it call itself, saved as this one?
            with session_scope() as session:
                workflow = crud.get_workflow(session=session, ref=request["workflow"])
                check_no_cycle(spec, workflow.id, workflow.name)
    except WorkflowInvalid as exc:
        issues = exc.issues
    return {"valid": not issues, "issues": _issues(issues), "warnings": _issues(warnings)}


@server_function
def ports(request: Payload) -> Payload:
    """Ports of one node for the given params (a prompt's variables become input ports as it is typed)."""
    return graph.node_ports(str(_required(request, "type")), request.get("params") or {})


@server_function
def connect_check(request: Payload) -> Payload:
    spec = spec_from_dict(_required(request, "spec"))
    return graph.check_connection(spec, str(_required(request, "sender")), str(_required(request, "receiver"))).to_dict()


SERVER_FUNCTIONS = [bootstrap, list_workflows, open_workflow, create_workflow, rename_workflow, delete_workflow,
                    save_draft, discard_draft, save_version, history, compare_versions, restore_version, import_yaml,
                    validate, ports, connect_check]
