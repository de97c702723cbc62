"""What a valid workflow needs that this machine lacks right now: warnings, not issues (``warnings``).

A model named by hub id may be downloaded on another machine, or mapped to a folder later, so a workflow naming
one this machine cannot load still validates and saves; validate and save say so, pinned to the node and its
``model`` parameter, so the failure is seen before a run meets it.

Example::

    [(w.node, w.message) for w in warnings(spec)]
"""

from __future__ import annotations

from knowledge import lifecycle as knowledge
from knowledge.bases import get as knowledge_base
from knowledge.search import KNOWLEDGE_BASE_STORE
from nodes.catalog import get_node_type
from nodes.models import cached_names, missing_model
from stackyard.errors import NotFound
from stackyard.settings import Settings, get_settings
from store.db import session_scope
from workflows.errors import Issue, IssueCode
from workflows.spec import WorkflowSpec


def model_warnings(spec: WorkflowSpec, settings: Settings | None = None) -> list[Issue]:
    """One warning per palette node whose model this machine cannot load now (see ``nodes.models.missing_model``)."""
    settings = settings or get_settings()
    named = [(name, key, value) for name, comp in spec.components.items()
             for key in getattr(get_node_type(comp.type) if isinstance(comp.type, str) else None, "model_params", ())
             if isinstance(value := comp.init_parameters.get(key), str) and value]
    cached = cached_names() if named else set()  # the cache is scanned only when some node names a model
    warnings = []
    for name, key, value in named:
        if why := missing_model(value, settings, cached):
            warnings.append(Issue(IssueCode.MODEL_UNAVAILABLE, node=name, port=key,
                field=f"components.{name}.init_parameters.{key}",
                message=f"Node '{name}': {why}. Pick a model this machine has (/models) or map this one to a "
                        "folder (STACKYARD_MODEL_PATHS); until then its runs fail on this node."))
    return warnings


def knowledge_warnings(spec: WorkflowSpec) -> list[Issue]:
    """One warning per component reading a knowledge base that is empty or still indexing: its runs retrieve
    nothing, or not everything, yet. A base that does not exist is an issue of validation, not a warning."""
    found = []
    for name, comp in spec.components.items():
        for key, value in comp.init_parameters.items():
            if isinstance(value, dict) and value.get("type") == KNOWLEDGE_BASE_STORE:
                base_name = (value.get("init_parameters") or {}).get("name")
                if isinstance(base_name, str):
                    found.append((name, key, base_name))
    warnings = []
    for name, key, base_name in found:
        with session_scope() as session:
            try:
                status = knowledge.status(knowledge.counts(session, knowledge_base(session, base_name).id))
            except NotFound:
                continue
        if status in ("empty", "indexing"):
            why = "has no documents yet" if status == "empty" else "is still indexing documents"
            warnings.append(Issue(IssueCode.KNOWLEDGE_NOT_READY, node=name, port=key,
                field=f"components.{name}.init_parameters.{key}",
                message=f"Node '{name}': knowledge base '{base_name}' {why}; until it is ready its runs retrieve "
                        f"{'nothing' if status == 'empty' else 'only the documents already done'}."))
    return warnings


def warnings(spec: WorkflowSpec, settings: Settings | None = None) -> list[Issue]:
    """Everything a valid workflow lacks right now: models this machine cannot load, knowledge bases not ready."""
    return [*model_warnings(spec, settings), *knowledge_warnings(spec)]
