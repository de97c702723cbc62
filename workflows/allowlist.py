"""Stackyard's own allowlist, checked on the *strings* of a definition before anything is imported.

Haystack's module allowlist guards its deserializer, but it has had bypasses; Stackyard adds a stricter
gate in front of it. A component ``type`` must be a class listed in the node catalog (or in
``STACKYARD_ALLOWED_COMPONENTS``); a nested ``type`` (document stores) must be a known store class;
parameters that would run user-supplied code (callbacks, custom Jinja filters, ``unsafe`` rendering,
``trust_remote_code``, tools) are refused. A secret may only name an environment variable an operator
granted (``STACKYARD_SECRET_ENV``), and a URL the component will call (``api_base_url``, an endpoint) must
pass the fetcher's address policy (``STACKYARD_FETCH_ALLOWED_HOSTS``). Nothing here imports the module a
string names.
"""

from __future__ import annotations

import re
from typing import Any

from nodes.catalog import NESTED_TYPES, get_node_type
from nodes.errors import NodeInputError
from nodes.fetchers import check_outbound_url
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

# Allowed nowhere, because Stackyard ships a guarded version of each: refusals name the replacement.
_FETCHER = ("nodes.fetchers.GuardedLinkContentFetcher (\"URL fetcher\" in the palette): the same inputs and outputs, "
            "and it refuses private and local addresses unless an operator allows them (STACKYARD_FETCH_ALLOWED_HOSTS)")
GUARDED_INSTEAD: dict[str, str] = {
    "haystack.components.fetchers.LinkContentFetcher": _FETCHER,
    "haystack.components.fetchers.link_content.LinkContentFetcher": _FETCHER,
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
    if type_ in GUARDED_INSTEAD and not is_allowed_type(type_):
        return Issue(IssueCode.NOT_ALLOWED, node=node, field=f"components.{node}.type",
                     message=f"Node '{node}': {type_} would fetch any address, including this machine's and your "
                             f"network's, so it is not allowed; use {GUARDED_INSTEAD[type_]}.")
    if not is_allowed_type(type_):
        return Issue(IssueCode.NOT_ALLOWED, node=node, field=f"components.{node}.type",
                     message=f"Node '{node}': {type_} is not an allowed component. Pick a node from the palette, "
                             "or ask an operator to add the class to STACKYARD_ALLOWED_COMPONENTS.")
    return None


def unsafe_jinja(text: str) -> str | None:
    """Why a template is refused, if it is: it reaches for a private attribute (the sandbox escape
    pattern), or compiling it would compute a huge constant (see ``workflows.jinja_limits``).

    Haystack renders in Jinja's sandbox, which raises only at render time, and compiles templates in the
    components' ``__init__``; refusing such templates before either gives the author the error at once.
    The reason continues "the template in '<param>' …".
    """
    from jinja2 import TemplateSyntaxError, nodes

    from workflows.jinja_limits import TemplateTooCostly, parse_bounded

    try:
        tree = parse_bounded(text)  # constants folded, so '_' ~ '_class__' is seen as '__class__'
    except TemplateSyntaxError:
        return None  # the component reports syntax errors itself
    except TemplateTooCostly as exc:
        return str(exc)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            return f"reaches for the private attribute '{name}', which is unsafe; use only variables and filters"
    return None


def check_params(node: str, params: dict[str, Any], *, running: bool = False) -> list[Issue]:
    """Refuse parameters that would execute user-supplied code or reach outside the workflow.

    :param running: The pipeline is built to run now, so an outbound URL whose host does not resolve is
        refused as well; when a workflow is only validated it passes (the machine may be offline).
    """
    issues: list[Issue] = []
    for path, key, value in _walk(params, ""):
        where = f"components.{node}.init_parameters{path}"
        lowered = key.lower()
        if isinstance(value, str) and ("{{" in value or "{%" in value) and (reason := unsafe_jinja(value)):
            # Pinned to the parameter the node's form shows (e.g. 'routes'); the message names the exact spot.
            issues.append(Issue(IssueCode.DANGEROUS_PARAM, node=node, port=_param(path), field=where,
                                message=f"Node '{node}': the template in '{path[1:]}' {reason}."))
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
        elif lowered == "env_vars" and path.endswith(f".{key}") and value in ([], "", None):
            param = _param(path)
            issues.append(Issue(IssueCode.BAD_PARAM, node=node, port=param, field=where,
                                message=f"Node '{node}': '{param}' names no environment variable (env_vars is empty); "
                                        f"list the variable that holds the key, or remove '{param}' if the server "
                                        "needs none."))
        elif lowered == "env_vars" and path.endswith(f".{key}"):  # the names as a whole, not each walked item
            issues += [Issue(IssueCode.DANGEROUS_PARAM, node=node, port=_param(path), field=where,
                             message=f"Node '{node}': {problem}") for problem in _ungranted_secrets(value)]
        elif _is_outbound_url(lowered, value) and (refusal := _url_refusal(value, key, running)):
            issues.append(Issue(IssueCode.DANGEROUS_PARAM, node=node, port=_param(path), field=where,
                                message=f"Node '{node}': '{key}' is a server this workflow may not call. {refusal}"))
    return issues


def _param(path: str) -> str:
    """The top-level init parameter of a walked path (``.api_key.env_vars[0]`` → ``api_key``)."""
    return re.split(r"[.\[]", path[1:], maxsplit=1)[0]


def _ungranted_secrets(names: Any) -> list[str]:
    """Why each env var a Haystack Secret names may not be read, if it may not."""
    granted = get_settings().secret_env
    fix = "ask an operator to add it to STACKYARD_SECRET_ENV"
    offer = f"use one of {', '.join(granted)}, or {fix}" if granted else fix
    problems = []
    for name in names if isinstance(names, list) else [names]:
        if not isinstance(name, str):
            problems.append(f"secret env var {name!r} is not a variable name; {offer}.")
        elif name.upper().startswith("STACKYARD_"):
            problems.append(f"secret env var {name} belongs to Stackyard's own settings and cannot be read by a "
                            "workflow; use another variable.")
        elif name not in granted:
            problems.append(f"secret env var {name} is not one an operator has granted to workflows; {offer}.")
    return problems


def _is_outbound_url(key: str, value: Any) -> bool:
    # The server a component calls: api_base_url, azure_endpoint, api_params.url, an httpx proxy or base_url.
    return isinstance(value, str) and bool(value) and (key in ("url", "proxy") or key.endswith(("_url", "endpoint")))


def _url_refusal(url: str, key: str, running: bool) -> str | None:
    try:
        check_outbound_url(url, field=key, offline_ok=not running)
    except NodeInputError as exc:  # a refused URL, or an unreadable STACKYARD_FETCH_ALLOWED_HOSTS entry
        return str(exc)
    return None


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
