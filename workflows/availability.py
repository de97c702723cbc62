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
from nodes.catalog import KNOWLEDGE_BASE_WRITER, get_node_type
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
    """One warning per component reading a knowledge base that is empty or still indexing (its runs retrieve
    nothing, or not everything, yet), or whose query embedding comes from another model than the base's (its
    vectors are in another space: the scores mean nothing). A base that does not exist is an issue of
    validation, not a warning."""
    found = []
    warnings = []
    for name, comp in spec.components.items():
        if comp.type == KNOWLEDGE_BASE_WRITER:
            warnings += _writer_warnings(name, comp.init_parameters.get("knowledge_base"))
        for key, value in comp.init_parameters.items():
            if isinstance(value, dict) and value.get("type") == KNOWLEDGE_BASE_STORE:
                base_name = (value.get("init_parameters") or {}).get("name")
                if isinstance(base_name, str):
                    found.append((name, key, base_name))
    for name, key, base_name in found:
        with session_scope() as session:
            try:
                base = knowledge_base(session, base_name)
            except NotFound:
                continue
            status = knowledge.status(knowledge.counts(session, base.id), reindexing=base.next_generation is not None)
            model = base.embedding_model
        field = f"components.{name}.init_parameters.{key}"
        if str(spec.components[name].type).endswith("DocumentWriter"):
            warnings.append(Issue(IssueCode.KNOWLEDGE_WRITTEN_BY_WORKFLOW, node=name, port=key, field=field,
                message=f"Node '{name}' writes into knowledge base '{base_name}': what it writes is searched, but it "
                        "is not listed among the base's documents or chunks and a re-index leaves it out. Use a "
                        "'Knowledge base writer' node instead (the base chunks and embeds what it is given), or "
                        f"add documents on /knowledge or with `stackyard kb add {base_name}`."))
            continue
        if status in ("empty", "indexing"):
            why = "has no documents yet" if status == "empty" else "is still indexing documents"
            warnings.append(Issue(IssueCode.KNOWLEDGE_NOT_READY, node=name, port=key, field=field,
                message=f"Node '{name}': knowledge base '{base_name}' {why}; until it is ready its runs retrieve "
                        f"{'nothing' if status == 'empty' else 'only the documents already done'}."))
        for embedder, embedder_model in _query_embedders(spec, name):
            if embedder_model != model:
                warnings.append(Issue(IssueCode.KNOWLEDGE_MODEL_MISMATCH, node=embedder, port="model",
                    field=f"components.{embedder}.init_parameters.model",
                    message=f"Node '{embedder}' embeds the query with '{embedder_model}', but knowledge base "
                            f"'{base_name}' (read by '{name}') is embedded with '{model}': the vectors are in "
                            f"different spaces and the hits are noise. Set its model to '{model}'."))
    return warnings


def _writer_warnings(name: str, base_name: object) -> list[Issue]:
    """A knowledge base writer naming no base, or one that does not exist (yet): its runs fail until it does. A
    warning, so a node just dropped, a template or an import naming a base made later still validates and saves."""
    if not isinstance(base_name, str) or not base_name.strip():
        return [Issue(IssueCode.KNOWLEDGE_BASE_MISSING, node=name, port="knowledge_base",
                      field=f"components.{name}.init_parameters.knowledge_base",
                      message=f"Node '{name}' names no knowledge base to add documents to; pick one (or create it on "
                              "/knowledge). Its runs fail until then.")]
    with session_scope() as session:
        try:
            knowledge_base(session, base_name.strip())
            return []
        except NotFound:
            pass
    return [Issue(IssueCode.KNOWLEDGE_BASE_MISSING, node=name, port="knowledge_base",
                  field=f"components.{name}.init_parameters.knowledge_base",
                  message=f"Node '{name}' adds documents to knowledge base '{base_name}', which does not exist; its "
                          "runs fail until it does. Create it on /knowledge, or name another.")]


def _query_embedders(spec: WorkflowSpec, retriever: str) -> list[tuple[str, str]]:
    """The components sending ``retriever`` its query embedding, with the model each names."""
    found = []
    for connection in spec.connections:
        sender, _, _ = connection.sender.partition(".")
        receiver, _, socket = connection.receiver.partition(".")
        comp = spec.components.get(sender)
        if receiver == retriever and socket == "query_embedding" and comp is not None:
            model = comp.init_parameters.get("model")
            if isinstance(model, str) and model:
                found.append((sender, model))
    return found


def warnings(spec: WorkflowSpec, settings: Settings | None = None) -> list[Issue]:
    """Everything a valid workflow lacks right now: models this machine cannot load, knowledge bases not ready."""
    return [*model_warnings(spec, settings), *knowledge_warnings(spec)]
