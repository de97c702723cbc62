"""What a valid workflow needs that this machine lacks right now: warnings, not issues.

A model named by hub id may be downloaded on another machine, or mapped to a folder later, so a workflow naming
one this machine cannot load still validates and saves; validate and save say so, pinned to the node and its
``model`` parameter, so the failure is seen before a run meets it.

Example::

    [(w.node, w.message) for w in model_warnings(spec)]
"""

from __future__ import annotations

from nodes.catalog import get_node_type
from nodes.models import cached_names, missing_model
from stackyard.settings import Settings, get_settings
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
