"""Stackyard's own allowlist, checked on the *strings* of a definition before anything is imported.

Haystack's module allowlist guards its deserializer, but it has had bypasses; Stackyard adds a stricter
gate in front of it. A component ``type`` must be a class listed in the node catalog (or in
``STACKYARD_ALLOWED_COMPONENTS``); a nested ``type`` (document stores) must be a known store class;
parameters that would run user-supplied code (callbacks, custom Jinja filters, ``unsafe`` rendering,
``trust_remote_code``, tools) are refused. Nothing here imports the module a string names.
"""

from __future__ import annotations

import re
from typing import Any

from nodes.catalog import NESTED_TYPES, get_node_type
from stackyard.settings import get_settings
from workflows.errors import Issue, IssueCode

_ST = "haystack_integrations.components"
# Haystack 2.x class paths that 3.x removed or moved, with what to use instead.
REMOVED_IN_3X: dict[str, str] = {
    "haystack.components.generators.openai.OpenAIGenerator":
        "haystack.components.generators.chat.openai.OpenAIChatGenerator (feed it from a PromptBuilder)",
    "haystack.components.generators.hugging_face_local.HuggingFaceLocalGenerator":
        f"{_ST}.generators.transformers.chat.chat_generator.TransformersChatGenerator (from transformers-haystack)",
    "haystack.components.generators.chat.hugging_face_local.HuggingFaceLocalChatGenerator":
        f"{_ST}.generators.transformers.chat.chat_generator.TransformersChatGenerator (from transformers-haystack)",
    "haystack.components.embedders.sentence_transformers_document_embedder.SentenceTransformersDocumentEmbedder":
        f"{_ST}.embedders.sentence_transformers.sentence_transformers_document_embedder.SentenceTransformersDocumentEmbedder",
    "haystack.components.embedders.sentence_transformers_text_embedder.SentenceTransformersTextEmbedder":
        f"{_ST}.embedders.sentence_transformers.sentence_transformers_text_embedder.SentenceTransformersTextEmbedder",
    "haystack.components.rankers.sentence_transformers_similarity.SentenceTransformersSimilarityRanker":
        f"{_ST}.rankers.sentence_transformers.sentence_transformers_similarity.SentenceTransformersSimilarityRanker",
    "haystack.components.rankers.transformers_similarity.TransformersSimilarityRanker":
        f"{_ST}.rankers.sentence_transformers.sentence_transformers_similarity.SentenceTransformersSimilarityRanker",
    "haystack.components.builders.dynamic_prompt_builder.DynamicPromptBuilder":
        "haystack.components.builders.prompt_builder.PromptBuilder",
    "haystack.components.builders.dynamic_chat_prompt_builder.DynamicChatPromptBuilder":
        "haystack.components.builders.chat_prompt_builder.ChatPromptBuilder",
}

_CLASS_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
# Parameters whose value Haystack turns into an imported callable or executes.
_CODE_PARAMS = ("callback", "tool_parsing_function", "custom_filters", "tools", "async_executor")


def _is_code(key: str, value: Any) -> bool:
    if value in (None, {}, [], ""):
        return False
    if key.endswith(_CODE_PARAMS):
        return True
    # e.g. DocumentSplitter.splitting_function: a dotted path Haystack would import; plain names
    # such as InMemoryDocumentStore's embedding_similarity_function="dot_product" are enums.
    return key.endswith("function") and (not isinstance(value, str) or "." in value)
_TRUTHY_FORBIDDEN = {
    "unsafe": "it turns off Jinja's sandbox; write the condition with the built-in filters instead",
    "trust_remote_code": "it would run Python shipped with the model; use a model that needs no custom code",
    "drop_old": "it deletes the shared collection every time a worker builds the pipeline",
    "allowed_hosts": "it widens what a URL fetcher may reach; an operator sets STACKYARD_FETCH_ALLOWED_HOSTS instead",
}


def is_allowed_type(type_: str) -> bool:
    """In the catalog, or named by STACKYARD_ALLOWED_COMPONENTS: a class path, or ``package.*`` for any
    component class under that package (the class must then be a registered Haystack component)."""
    if get_node_type(type_) is not None:
        return True
    for entry in get_settings().allowed_components:
        if entry == type_ or (entry.endswith(".*") and type_.startswith(entry[:-1])):
            return True
    return False


def check_type(node: str, type_: Any) -> Issue | None:
    """Refuse a component type that is not an allowlisted class — by string, before any import."""
    if not isinstance(type_, str) or not _CLASS_PATH.match(type_):
        return Issue(IssueCode.UNKNOWN_COMPONENT, node=node, field=f"components.{node}.type",
                     message=f"Node '{node}': type {type_!r} is not a class path such as "
                             "'haystack.components.builders.prompt_builder.PromptBuilder'.")
    if type_ in REMOVED_IN_3X:
        return Issue(IssueCode.REMOVED_COMPONENT, node=node, field=f"components.{node}.type",
                     message=f"Node '{node}': {type_} was removed in Haystack 3.x; use {REMOVED_IN_3X[type_]}.")
    if not is_allowed_type(type_):
        return Issue(IssueCode.NOT_ALLOWED, node=node, field=f"components.{node}.type",
                     message=f"Node '{node}': {type_} is not an allowed component. Pick a node from the palette, "
                             "or ask an operator to add the class to STACKYARD_ALLOWED_COMPONENTS.")
    return None


def _unsafe_jinja(text: str) -> str | None:
    """The first private attribute a template reaches for (the sandbox escape pattern), if any.

    Haystack renders in Jinja's sandbox, which raises only at render time; refusing such templates
    when the workflow is saved gives the author the error at once.
    """
    from jinja2 import TemplateSyntaxError, nodes
    from jinja2.sandbox import SandboxedEnvironment

    try:
        tree = SandboxedEnvironment().parse(text)
    except TemplateSyntaxError:
        return None  # the component reports syntax errors itself
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            return name
    return None


def check_params(node: str, params: dict[str, Any]) -> list[Issue]:
    """Refuse parameters that would execute user-supplied code or reach outside the workflow."""
    issues: list[Issue] = []
    for path, key, value in _walk(params, ""):
        where = f"components.{node}.init_parameters{path}"
        lowered = key.lower()
        if isinstance(value, str) and ("{{" in value or "{%" in value) and (attr := _unsafe_jinja(value)):
            issues.append(Issue(IssueCode.DANGEROUS_PARAM, node=node, port=key, field=where,
                                message=f"Node '{node}': the template in '{key}' reaches for the private attribute "
                                        f"'{attr}', which is unsafe; use only variables and filters."))
        elif lowered in _TRUTHY_FORBIDDEN and value:
            issues.append(Issue(IssueCode.DANGEROUS_PARAM, node=node, port=key, field=where,
                                message=f"Node '{node}': '{key}: {value}' is refused: {_TRUTHY_FORBIDDEN[lowered]}."))
        elif _is_code(lowered, value):
            issues.append(Issue(IssueCode.DANGEROUS_PARAM, node=node, port=key, field=where,
                                message=f"Node '{node}': '{key}' would load Python code and is refused; remove it "
                                        "(Stackyard sets streaming callbacks itself)."))
        elif lowered == "type" and isinstance(value, str) and "." in value and value not in NESTED_TYPES:
            issues.append(Issue(IssueCode.NOT_ALLOWED, node=node, field=where,
                                message=f"Node '{node}': nested type {value} is not allowed; use one of "
                                        f"{', '.join(sorted(NESTED_TYPES))}."))
        elif lowered == "env_vars" and isinstance(value, list):
            for env in value:
                if isinstance(env, str) and env.upper().startswith("STACKYARD_"):
                    issues.append(Issue(IssueCode.DANGEROUS_PARAM, node=node, field=where,
                                        message=f"Node '{node}': secret env var {env} belongs to Stackyard's own "
                                                "settings and cannot be read by a workflow; use another variable."))
    return issues


def _walk(value: Any, path: str, key: str = ""):
    """Yield (path, key, value) for every mapping entry and list item, recursively."""
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}"
            yield sub, str(key), item
            yield from _walk(item, sub, str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield f"{path}[{index}]", key, item
            yield from _walk(item, f"{path}[{index}]", key)
