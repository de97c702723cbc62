"""Turn a checked spec's components into live Haystack components (``workflows.validation`` connects them into a
``Pipeline``).

Haystack does the real work (``component_from_dict``, ``Pipeline.connect`` and its type checks);
this module runs Stackyard's string-level allowlist first, fills in deployment facts (the vector
store URI, local model paths) and pins every Haystack exception to a node and port.

``BuildMode.VALIDATE`` never touches the outside world: document stores are replaced by an in-memory
store after their parameters are checked, and no model is loaded (models load in ``warm_up``).
"""

from __future__ import annotations

import copy
import enum
import functools
import inspect
import os
from typing import Any, TypeVar

from haystack.core.component import component
from haystack.core.errors import DeserializationError
from haystack.core.serialization import (
    allow_deserialization_module,
    component_from_dict,
    import_class_by_name,
)

from knowledge.bases import get as knowledge_base
from knowledge.search import KNOWLEDGE_BASE_STORE, PARENTS, store_parameters
from nodes.catalog import AUTO_MERGING_RETRIEVER, IN_MEMORY_STORE, MILVUS_STORE, NESTED_TYPES, get_node_type
from nodes.errors import FileAccessError, NodeInputError
from nodes.fetchers import check_client_kwargs, guarded_client_kwargs
from nodes.files import confine_file_inputs, confine_model_path, looks_like_model_path
from stackyard.errors import NotFound
from stackyard.settings import Settings, get_settings
from store.db import session_scope
from workflows.allowlist import check_params, check_type, unsafe_jinja
from workflows.errors import Issue, IssueCode
from workflows.spec import ComponentSpec

# Stackyard's own components and the Milvus integration live outside Haystack's default module
# allowlist; our class allowlist (workflows.allowlist) has already vetted every type by then.
for _module in ("nodes", "knowledge.writer", "milvus_haystack"):
    allow_deserialization_module(_module)

# Components outside the catalog (STACKYARD_ALLOWED_COMPONENTS): Haystack's local-model nodes name it ``model``.
T = TypeVar("T")
_UNLISTED_MODEL_PARAMS = ("model",)
# Keys inside a component's loader options (``*_kwargs``) that name a model, a tokenizer or a folder to read.
_NESTED_MODEL_KEYS = ("model", "tokenizer", "cache_dir", "pretrained_model_name_or_path", "config", "processor",
                      "image_processor", "feature_extractor", "vocab_file", "tokenizer_file", "merges_file")
# ``*_kwargs`` that are not loader options: a server generator's ``generation_kwargs.model`` names a remote model.
_NOT_LOADER_OPTIONS = ("generation_kwargs",)

# The key an OpenAI-compatible component sends to a server named by ``api_base_url`` when its workflow names no
# key: local servers (Ollama, vLLM, llama.cpp) ignore it, and the component needs none set in the environment.
# Without it Haystack would read OPENAI_API_KEY, and send the OpenAI key to that server.
KEYLESS_ENV = "STACKYARD_KEYLESS_SERVER_KEY"
os.environ.setdefault(KEYLESS_ENV, "no-key")


class BuildMode(enum.Enum):
    VALIDATE = "validate"
    RUN = "run"


class NotAComponent(DeserializationError):
    """An allowlisted module's attribute that is not a registered Haystack component class."""


class ComponentBuildError(Exception):
    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__(issues[0].message)


def import_component_class(type_: str) -> type:
    """Import an allowlisted class (callers have run ``check_type`` on the string already)."""
    module = type_.rsplit(".", 1)[0]
    allow_deserialization_module(module)
    cls = import_class_by_name(type_)
    if type_ not in NESTED_TYPES and type_ not in component.registry:
        raise NotAComponent(f"{type_} is not a Haystack component class")
    return cls


def _init_param_names(cls: type) -> set[str] | None:
    params = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.name != "self"}


def _resolve_models(name: str, type_: str, params: dict[str, Any], settings: Settings) -> None:
    """Map model names to the operator's local folders; confine any other model path to the model roots.

    Beside the node's model parameters, the loader options a component passes on (``*_kwargs``, such as
    ``huggingface_pipeline_kwargs``, ``model_kwargs``, ``tokenizer_kwargs``) can name a model, a tokenizer or
    a cache folder, which the loader reads (and the pipeline's own ``model`` would be overridden by)."""
    node_type = get_node_type(type_)
    places = [(params, key, key) for key in (node_type.model_params if node_type else _UNLISTED_MODEL_PARAMS)]
    loader_options = [(options, outer) for outer, options in params.items()
                      if outer.endswith("_kwargs") and outer not in _NOT_LOADER_OPTIONS and isinstance(options, dict)]
    while loader_options:  # nested too: huggingface_pipeline_kwargs.model_kwargs.cache_dir
        options, path = loader_options.pop()
        places += [(options, key, f"{path}.{key}") for key in _NESTED_MODEL_KEYS]
        if path.count(".") < 4:
            loader_options += [(inner, f"{path}.{key}") for key, inner in options.items() if isinstance(inner, dict)]
    for holder, key, where in places:
        value = holder.get(key)
        if not isinstance(value, str):
            continue
        local = settings.local_model_path(value)
        if local:
            holder[key] = local
        elif key == "cache_dir" or looks_like_model_path(value):
            try:
                holder[key] = str(confine_model_path(value, settings, field=where))
            except FileAccessError as exc:
                raise ComponentBuildError([Issue(IssueCode.DANGEROUS_PARAM, node=name, port=where.split(".")[0],
                    field=f"components.{name}.init_parameters.{where}",
                    message=f"Node '{name}', parameter '{where}': {exc}")]) from None


def knowledge_base_store(name: str, key: str, store: dict[str, Any], component_type: str) -> dict[str, Any]:
    """The Milvus store a knowledge base named as a component's document store stands for (its serving
    collection; for an auto-merging retriever, that of its chunks' parents), or the issue naming the node when
    there is no such base."""
    base_name = (store.get("init_parameters") or {}).get("name")
    field = f"components.{name}.init_parameters.{key}.init_parameters.name"
    if not isinstance(base_name, str) or not base_name:
        raise ComponentBuildError([Issue(IssueCode.BAD_PARAM, node=name, port=key, field=field,
            message=f"Node '{name}': name the knowledge base its {key} reads (init_parameters.name).")])
    try:
        with session_scope() as session:
            base = knowledge_base(session, base_name)
            if component_type != AUTO_MERGING_RETRIEVER:
                return {"type": MILVUS_STORE, "init_parameters": store_parameters(base)}
            if not base.chunking.get("parent_length"):
                raise ComponentBuildError([Issue(IssueCode.BAD_PARAM, node=name, port=key, field=field,
                    message=f"Node '{name}': knowledge base '{base_name}' has no parent chunks for an auto-merging "
                            "retriever to return. Re-index it with parent–child chunking (chunking.parent_length), "
                            "or remove this node.")])
            return {"type": MILVUS_STORE, "init_parameters": store_parameters(base, part=PARENTS)}
    except NotFound as exc:
        raise ComponentBuildError([Issue(IssueCode.BAD_PARAM, node=name, port=key, field=field,
            message=f"Node '{name}': {exc}")]) from None


def _prepare_store(name: str, key: str, store: dict[str, Any], mode: BuildMode, settings: Settings) -> dict[str, Any]:
    if store.get("type") != MILVUS_STORE:
        return store
    store_params = dict(store.get("init_parameters") or {})
    store_cls = import_component_class(MILVUS_STORE)
    try:
        inspect.signature(store_cls.__init__).bind(None, **store_params)
    except TypeError as exc:
        raise ComponentBuildError([Issue(IssueCode.BAD_PARAM, node=name, port=key,
            field=f"components.{name}.init_parameters.{key}",
            message=f"Node '{name}': bad Milvus store parameter ({exc}); keep collection_name and drop the rest.")]) from None
    files = sorted(k for k in (store_params.get("connection_args") or {}) if isinstance(k, str) and k.endswith("_path"))
    if files:
        where = f"components.{name}.init_parameters.{key}.init_parameters.connection_args.{files[0]}"
        raise ComponentBuildError([Issue(IssueCode.DANGEROUS_PARAM, node=name, port=key, field=where,
            message=f"Node '{name}': Milvus connection_args.{files[0]} would have the worker read a file of its "
                    "choosing; Stackyard connects to the operator's Milvus (STACKYARD_MILVUS_URI). Remove it.")])
    if mode is BuildMode.VALIDATE:
        return {"type": IN_MEMORY_STORE, "init_parameters": {}}
    from nodes.stores import ensure_vector_store

    store_params["connection_args"] = {**(store_params.get("connection_args") or {}), "uri": ensure_vector_store(settings)}
    return {"type": MILVUS_STORE, "init_parameters": store_params}


def prepare_component_data(name: str, comp: ComponentSpec, mode: BuildMode, settings: Settings) -> tuple[type, dict[str, Any]]:
    """Allowlist, import and fill in a component's dict; raise ComponentBuildError with pinned issues."""
    problem = check_type(name, comp.type)
    if problem:
        raise ComponentBuildError([problem])
    params = copy.deepcopy(comp.init_parameters)
    issues = check_params(name, params, running=mode is BuildMode.RUN)
    if issues:
        raise ComponentBuildError(issues)
    try:
        cls = import_component_class(comp.type)
    except NotAComponent:
        raise ComponentBuildError([Issue(IssueCode.NOT_ALLOWED, node=name, field=f"components.{name}.type",
            message=f"Node '{name}': {comp.type} is not a component class; pick a component from the palette.")]) from None
    except (ImportError, AttributeError, DeserializationError) as exc:
        raise ComponentBuildError([Issue(IssueCode.UNKNOWN_COMPONENT, node=name, field=f"components.{name}.type",
            message=f"Node '{name}': {comp.type} cannot be loaded ({exc}); install its package or pick another node.")]) from None
    valid = _init_param_names(cls)
    unknown = sorted(set(params) - valid) if valid is not None else []
    if unknown:
        raise ComponentBuildError([Issue(IssueCode.BAD_PARAM, node=name, port=key,
            field=f"components.{name}.init_parameters.{key}",
            message=f"Node '{name}': unknown parameter '{key}' for {cls.__name__}; valid parameters are "
                    f"{', '.join(sorted(valid))}.") for key in unknown])
    for key, value in list(params.items()):
        if isinstance(value, dict) and value.get("type") == KNOWLEDGE_BASE_STORE:
            value = params[key] = knowledge_base_store(name, key, value, comp.type)
        if isinstance(value, dict) and "type" in value and isinstance(value["type"], str) and "." in value["type"]:
            params[key] = _prepare_store(name, key, value, mode, settings)
    _resolve_models(name, comp.type, params, settings)
    _keyless_server(cls, params)
    if "http_client_kwargs" in inspect.signature(cls.__init__).parameters:
        try:
            check_client_kwargs(params.get("http_client_kwargs"))
            if mode is BuildMode.RUN:
                params["http_client_kwargs"] = guarded_client_kwargs(params.get("http_client_kwargs"))
        except NodeInputError as exc:
            raise ComponentBuildError([Issue(IssueCode.DANGEROUS_PARAM, node=name, port="http_client_kwargs",
                field=f"components.{name}.init_parameters.{exc.field}", message=f"Node '{name}': {exc}")]) from None
    return cls, {"type": comp.type, "init_parameters": params}


def _keyless_server(cls: type, params: dict[str, Any]) -> None:
    """An OpenAI-compatible component pointed at a server (``api_base_url``) with no ``api_key`` sends a dummy key
    (see ``KEYLESS_ENV``); a workflow cannot name that variable itself (``check_params`` refuses STACKYARD_*)."""
    accepted = inspect.signature(cls.__init__).parameters
    if "api_key" in accepted and "api_base_url" in accepted and params.get("api_base_url") and not params.get("api_key"):
        params["api_key"] = {"type": "env_var", "env_vars": [KEYLESS_ENV], "strict": True}


def _offline_milvus_component(cls: type, data: dict[str, Any]) -> Any | None:
    """For validation: a component bound to a never-connected MilvusDocumentStore, or None if not Milvus-bound.

    Milvus retrievers deserialize their store as MilvusDocumentStore explicitly (which connects), so
    validation creates them directly with a store object whose ``__init__`` never ran.
    """
    store_param = inspect.signature(cls.__init__).parameters.get("document_store")
    if store_param is None or getattr(store_param.annotation, "__name__", None) != MILVUS_STORE.rsplit(".", 1)[1]:
        return None
    store_cls = import_component_class(MILVUS_STORE)
    params = {k: v for k, v in data["init_parameters"].items() if k != "document_store"}
    return cls(document_store=store_cls.__new__(store_cls), **params)


def instantiate(name: str, comp: ComponentSpec, *, mode: BuildMode = BuildMode.RUN, settings: Settings | None = None) -> Any:
    """Create one node's component; a node that opens files confines every path it is given (in every mode).

    :raises ComponentBuildError: with issues pinned to the node and its parameter.
    """
    settings = settings or get_settings()
    cls, data = prepare_component_data(name, comp, mode, settings)
    try:
        instance = _offline_milvus_component(cls, data) if mode is BuildMode.VALIDATE else None
        if instance is None:
            instance = component_from_dict(cls, data, name)
    except Exception as exc:  # noqa: BLE001 - any failure of a user-supplied init is a bad parameter
        raise ComponentBuildError([Issue(IssueCode.BAD_PARAM, node=name, field=f"components.{name}.init_parameters",
            message=f"Node '{name}' ({cls.__name__}) rejected its parameters: {exc}. Fix the parameter named above.")]) from None
    return check_runtime_templates(confine_file_inputs(instance))


def check_runtime_templates(instance: T) -> T:
    """A prompt builder takes a template at run time too (its ``template`` input, from a run input or another
    node): it would compile it on the worker unchecked, so it gets the check a saved template gets first."""
    if "template" not in instance.__haystack_input__._sockets_dict or isinstance(instance.run, _TemplateCheckedRun):
        return instance
    instance.run = _TemplateCheckedRun(instance.run)  # type: ignore[attr-defined]
    return instance


class _TemplateCheckedRun:
    """``run`` of a component, refusing a costly or unsafe ``template`` argument before it is compiled."""

    def __init__(self, run: Any) -> None:
        self.run, self.signature = run, inspect.signature(run)
        functools.update_wrapper(self, run)   # its name and docstring: a node as an agent's tool is described by them

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        template = self.signature.bind(*args, **kwargs).arguments.get("template")
        # ChatPromptBuilder compiles every text part of every message, not only the first.
        texts = [template] if isinstance(template, str) else [t for m in template or [] for t in getattr(m, "texts", [])]
        for text in texts:
            if isinstance(text, str) and ("{{" in text or "{%" in text) and (reason := unsafe_jinja(text)):
                raise NodeInputError(f"The template this node was given to run {reason}.", field="template")
        return self.run(*args, **kwargs)
