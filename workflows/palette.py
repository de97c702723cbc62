"""What the canvas needs to draw and edit a node: its ports (with Haystack types) and a param schema.

Ports come from a live component built with the user's parameters, because they depend on them
(PromptBuilder variables from its template, ConditionalRouter outputs from its routes). Building uses
validation mode: no model loads and no store connects.

Example::

    ports("haystack.components.builders.prompt_builder.PromptBuilder", {"template": "Hi {{ name }}"})
    # {'inputs': [{'name': 'name', 'type': 'Any', 'mandatory': True, ...}, ...], 'outputs': [...]}
"""

from __future__ import annotations

import enum
import inspect
import re
import typing
from typing import Any

from nodes.catalog import CATALOG, NodeType, get_node_type


def type_label(tp: Any) -> str:
    """Readable Haystack type, e.g. ``list[Document]`` (module prefixes dropped)."""
    if tp is inspect.Parameter.empty:
        return "Any"
    text = getattr(tp, "__name__", None) if isinstance(tp, type) and not typing.get_args(tp) else None
    text = text or str(tp)
    for prefix in ("typing.", "haystack.dataclasses.document.", "haystack.dataclasses.chat_message.",
                   "haystack.dataclasses.byte_stream.", "haystack.dataclasses.answer.", "pathlib._local.", "pathlib.",
                   "haystack.dataclasses.sparse_embedding.", "haystack.dataclasses.streaming_chunk."):
        text = text.replace(prefix, "")
    return text.replace("NoneType", "None")


# Haystack types in the words a product manager uses (the Haystack type stays on hover).
_WORDS = {"str": "text", "list[str]": "texts", "list[float]": "embedding", "list[list[float]]": "embeddings",
          "list[Document]": "documents", "Document": "document", "list[ChatMessage]": "chat messages",
          "ChatMessage": "chat message", "list[ChatMessage] | str": "chat messages or text",
          "list[str] | list[ChatMessage]": "replies", "list[ByteStream]": "files",
          "list[str | Path | ByteStream]": "files or paths", "list[Path]": "file paths",
          "list[GeneratedAnswer]": "answers", "dict[str, Any]": "data", "list[dict[str, Any]]": "records",
          "int": "number", "float": "number", "bool": "yes or no", "Any": "anything"}


def plain_words(type_text: str) -> str:
    """``list[float]`` → "embedding", ``list[Document] | None`` → "documents (optional)"; else the type itself."""
    optional = type_text.endswith(" | None") or (type_text.startswith("Optional[") and type_text.endswith("]"))
    core = type_text.removesuffix(" | None")
    if core.startswith("Optional[") and core.endswith("]"):
        core = core[len("Optional["):-1]
    words = _WORDS.get(core)
    if words is None:
        return type_text
    return f"{words} (optional)" if optional else words


def ports(type_: str, params: dict[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Input and output sockets of a node built with ``params`` (catalog defaults fill the gaps)."""
    from workflows.build import BuildMode
    from workflows.spec import ComponentSpec
    from workflows.validation import build_node

    node_type = get_node_type(type_)
    merged = {**(node_type.defaults if node_type else {}), **(params or {})}
    component = build_node("node", ComponentSpec(type=type_, init_parameters=merged), mode=BuildMode.VALIDATE)
    inputs = [{"name": name, "type": type_label(socket.type), "words": plain_words(type_label(socket.type)),
               "mandatory": socket.is_mandatory, "variadic": socket.is_variadic}
              for name, socket in component.__haystack_input__._sockets_dict.items()]
    outputs = [{"name": name, "type": type_label(socket.type), "words": plain_words(type_label(socket.type))}
               for name, socket in component.__haystack_output__._sockets_dict.items()]
    return {"inputs": inputs, "outputs": outputs}


def _json_default(value: Any) -> Any:
    if value is inspect.Parameter.empty:
        return None
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (str, int, float, bool, type(None), list, dict)):
        return value
    return None  # callables, devices, secrets: set in the form, not shown as a default


def _kind(annotation: Any) -> tuple[str, list[Any] | None]:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "enum", list(args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "enum", [member.name for member in annotation]
    non_none = [a for a in args if a is not type(None)] if args else [annotation]
    base = non_none[0] if len(non_none) == 1 else annotation
    if typing.get_origin(base) is typing.Literal:
        return "enum", list(typing.get_args(base))
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return "enum", [member.name for member in base]
    for py, kind in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if base is py:
            return kind, None
    origin = typing.get_origin(base) or base
    if origin in (list, tuple, set) or origin is typing.Sequence:
        return "list", None
    if origin is dict:
        return "object", None
    return "object", None


# Parameters in a product manager's words; the Haystack name shows on hover. Others read as their name does.
PARAM_WORDS = {
    "top_k": "How many results", "split_by": "Split by", "split_length": "Chunk size",
    "split_overlap": "Chunk overlap", "split_threshold": "Smallest chunk", "model": "Model",
    "api_base_url": "Server address (ending /v1)", "api_key": "API key (environment variable)",
    "token": "Hugging Face token (environment variable)", "generation_kwargs": "Generation settings",
    "template": "Prompt template", "document_store": "Document store", "collection_name": "Collection",
    "policy": "When a document already exists", "scale_score": "Scores from 0 to 1", "filters": "Only documents matching",
    "timeout": "Timeout (seconds)", "max_retries": "Retries", "batch_size": "Batch size",
    "progress_bar": "Show progress", "normalize_embeddings": "Normalize embeddings", "device": "Device",
    "task": "Task", "routes": "Routes", "required_variables": "Required variables", "variables": "Variables",
    "meta_field": "Metadata field", "score_threshold": "Lowest score kept", "prefix": "Text before",
    "suffix": "Text after", "embedding_separator": "Separator", "meta_fields_to_embed": "Metadata to embed too",
}
_DOC_PARAM = re.compile(r"^:param (\w+):[ \t]*(.*?)(?=^:\w|\Z)", re.MULTILINE | re.DOTALL)
DOC_CHARS = 400


def param_words(name: str) -> str:
    """``top_k`` → "How many results"; a name not in :data:`PARAM_WORDS` reads as its words."""
    return PARAM_WORDS.get(name) or name.replace("_", " ").strip().capitalize()


def param_docs(cls: type) -> dict[str, str]:
    """What each init parameter does, from the component's own docstring (``:param name: text``)."""
    docs = {}
    for name, text in _DOC_PARAM.findall(inspect.getdoc(cls.__init__) or ""):
        words = " ".join(text.split())
        docs[name] = words if len(words) <= DOC_CHARS else words[:DOC_CHARS].rsplit(" ", 1)[0] + "…"
    return docs


def param_schema(node_type: NodeType) -> list[dict[str, Any]]:
    """One entry per init parameter: name, its label in plain words, what it does (the component's docstring),
    kind, default, enum, secret, template."""
    from workflows.build import import_component_class

    cls = import_component_class(node_type.type)
    hints = typing.get_type_hints(cls.__init__) if hasattr(cls.__init__, "__annotations__") else {}
    docs = param_docs(cls)
    schema = []
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            continue
        if name.endswith(("callback", "function", "executor")) or name in ("tools", "custom_filters", "unsafe"):
            continue  # code-bearing parameters are never offered (see workflows.allowlist)
        kind, choices = _kind(hints.get(name, param.annotation))
        if name in node_type.secrets:
            kind = "secret"
        elif name in node_type.templates:
            kind = "template"
        elif name == "document_store":
            kind = "document_store"
        default = node_type.defaults.get(name, _json_default(param.default))
        schema.append({"name": name, "label": param_words(name), "doc": docs.get(name, ""), "kind": kind,
                       "default": default, "enum": choices,
                       "required": param.default is inspect.Parameter.empty and name not in node_type.defaults})
    return schema


def describe(node_type: NodeType) -> dict[str, Any]:
    """The palette entry as JSON for the canvas."""
    return {"type": node_type.type, "title": node_type.title, "category": node_type.category,
            "description": node_type.description, "needs_gpu": node_type.needs_gpu,
            "defaults": node_type.defaults, "params": param_schema(node_type)}


def describe_catalog() -> list[dict[str, Any]]:
    return [describe(node_type) for node_type in CATALOG]
