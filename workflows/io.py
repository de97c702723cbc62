"""Import and export of Haystack pipeline files.

Import accepts anything ``Pipeline.dumps()`` writes, Hayhooks YAML (top-level ``inputs``/``outputs``)
and JSON. It is checked as text first — class allowlist and dangerous parameters — so a file naming
``os.system`` is refused before that module could be imported, and nothing is stored on any error.

Export writes Hayhooks-style YAML that plain ``Pipeline.loads()`` accepts (it ignores ``inputs`` and
``outputs``). Stored specs keep no Milvus connection: the vector store is a deployment setting, so
export fills in this deployment's URI and import drops whatever URI a file carries.
"""

from __future__ import annotations

import copy
from typing import Any

from nodes.catalog import MILVUS_STORE
from stackyard.settings import Settings, get_settings
from workflows.errors import WorkflowInvalid
from workflows.spec import WorkflowSpec, load_document, spec_from_dict, to_yaml
from workflows.validation import validate


def _milvus_stores(spec: WorkflowSpec):
    for comp in spec.components.values():
        for value in comp.init_parameters.values():
            if isinstance(value, dict) and value.get("type") == MILVUS_STORE:
                yield value.setdefault("init_parameters", {})


def neutral(spec: WorkflowSpec) -> WorkflowSpec:
    """Drop deployment-specific Milvus connections from a spec."""
    spec = spec.model_copy(deep=True)
    for store in _milvus_stores(spec):
        store.pop("connection_args", None)
    return spec


def import_document(data: dict[str, Any]) -> WorkflowSpec:
    spec = neutral(spec_from_dict(data))
    issues = validate(spec)
    if issues:
        raise WorkflowInvalid(issues)
    return spec


def import_text(text: str | bytes) -> WorkflowSpec:
    """Parse and fully validate a YAML/JSON definition; raise WorkflowInvalid listing every problem."""
    return import_document(load_document(text))


def export_yaml(spec: WorkflowSpec, settings: Settings | None = None) -> str:
    """Hayhooks-style YAML with this deployment's Milvus URI, loadable by plain Haystack."""
    settings = settings or get_settings()
    spec = copy.deepcopy(spec)
    for store in _milvus_stores(spec):
        store["connection_args"] = {"uri": settings.resolved_milvus_uri}
    return to_yaml(spec)
