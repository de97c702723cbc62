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

from haystack.core.errors import PipelineError

from knowledge.search import KNOWLEDGE_BASE_STORE
from nodes.catalog import MILVUS_STORE
from stackyard.settings import Settings, get_settings
from workflows.agents import component_parts
from workflows.build import BuildMode, ComponentBuildError, knowledge_base_store
from workflows.errors import WorkflowInvalid
from workflows.spec import WorkflowSpec, load_document, spec_from_dict, to_yaml
from workflows.validation import assemble, validate


def _milvus_stores(spec: WorkflowSpec):
    for _, _, params in component_parts(spec):              # with those of the nodes an agent calls as tools
        for value in params.values():
            if isinstance(value, dict) and value.get("type") == MILVUS_STORE:
                yield value.setdefault("init_parameters", {})


def neutral(spec: WorkflowSpec) -> WorkflowSpec:
    """Drop deployment-specific Milvus connections from a spec."""
    spec = spec.model_copy(deep=True)
    for store in _milvus_stores(spec):
        store.pop("connection_args", None)
    return spec


def with_interface(spec: WorkflowSpec, settings: Settings | None = None) -> WorkflowSpec:
    """Fill in the inputs and outputs a file does not declare, as Haystack sees them (``Pipeline.inputs()`` and
    ``outputs()``): each open mandatory socket is an input named after its socket (one input feeds every open
    socket of that name, as ``Pipeline.run({"query": …})`` does), and each unconnected output socket is an
    output named after its socket (``component_socket`` where two share a name)."""
    if spec.inputs and spec.outputs:
        return spec
    try:
        pipeline, _ = assemble(spec, mode=BuildMode.VALIDATE, settings=settings or get_settings())
    except PipelineError:  # validate() reports it
        return spec
    spec = spec.model_copy(deep=True)
    if not spec.inputs:
        for name, sockets in pipeline.inputs().items():
            for socket, about in sockets.items():
                if about["is_mandatory"]:
                    spec.inputs.setdefault(socket, []).append(f"{name}.{socket}")
    if not spec.outputs:
        leaves = [(name, socket) for name, sockets in pipeline.outputs().items() for socket in sockets]
        shared = {socket for _, socket in leaves if sum(other == socket for _, other in leaves) > 1}
        spec.outputs = {f"{name}_{socket}" if socket in shared else socket: f"{name}.{socket}" for name, socket in leaves}
    return spec


def as_imported(data: dict[str, Any]) -> WorkflowSpec:
    """What a parsed file imports as: its shape checked, Milvus connections dropped (``neutral``), the inputs and
    outputs it does not declare inferred (``with_interface``); not yet validated."""
    return with_interface(neutral(spec_from_dict(data)))


def import_document(data: dict[str, Any]) -> WorkflowSpec:
    """A validated spec from a parsed file (see ``as_imported``)."""
    spec = as_imported(data)
    issues = validate(spec)
    if issues:
        raise WorkflowInvalid(issues)
    return spec


def import_text(text: str | bytes) -> WorkflowSpec:
    """Parse and fully validate a YAML/JSON definition; raise WorkflowInvalid listing every problem."""
    return import_document(load_document(text))


def export_yaml(spec: WorkflowSpec, settings: Settings | None = None) -> str:
    """Hayhooks-style YAML with this deployment's Milvus URI, loadable by plain Haystack: a knowledge base a
    component names becomes the Milvus store it stands for (raises WorkflowInvalid when it is gone)."""
    settings = settings or get_settings()
    spec = copy.deepcopy(spec)
    try:
        for node, type_, params in component_parts(spec):
            for key, value in params.items():
                if isinstance(value, dict) and value.get("type") == KNOWLEDGE_BASE_STORE:
                    params[key] = knowledge_base_store(node, key, value, type_)
    except ComponentBuildError as exc:
        raise WorkflowInvalid(exc.issues) from None
    for store in _milvus_stores(spec):
        store["connection_args"] = {"uri": settings.resolved_milvus_uri}
    return to_yaml(spec)
