"""The workflow definition: Haystack's pipeline dict plus Stackyard metadata.

A spec is exactly what ``Pipeline.to_dict()`` produces (``components`` with ``type`` and
``init_parameters``, ``connections`` sender→receiver, ``metadata``, ``max_runs_per_component``) plus
Hayhooks-style top-level ``inputs`` (alias → list of ``component.socket``) and ``outputs``
(alias → ``component.socket``). Canvas data (positions, notes, chat roles) lives under
``metadata.stackyard`` so an exported file loads unchanged in plain Haystack and in Hayhooks.

Example::

    spec = parse_definition(open("rag.yml").read())
    spec.inputs["query"]          # ['text_embedder.text', 'prompt_builder.question']
    to_yaml(spec)                 # Hayhooks-style YAML

A document is refused, as a ``WorkflowInvalid`` naming the limit, when it is over ``MAX_DOCUMENT_BYTES``,
nests lists/mappings more than ``MAX_DEPTH`` levels deep (parsed YAML and dicts given to
``spec_from_dict`` alike), or when YAML aliases would add more than ``MAX_ALIAS_EXPANSION`` elements.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from workflows.errors import Issue, IssueCode, WorkflowInvalid

STACKYARD_META = "stackyard"
# Top-level keys Hayhooks adds to a Haystack pipeline file, written after Haystack's own.
HAYHOOKS_KEYS = ("inputs", "outputs", "streaming_components")


class ComponentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    init_parameters: dict[str, Any] = Field(default_factory=dict)


class Connection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sender: str
    receiver: str


def _one_socket(ref: Any) -> Any:
    # Hayhooks writes an output as "comp.socket" or as a one-item list of it; we store the string.
    if isinstance(ref, list):
        if len(ref) != 1:
            raise ValueError(f"lists {len(ref)} sockets; an output is one socket ('component.socket'): declare one "
                             "output per socket")
        return ref[0]
    return ref


OutputRef = Annotated[str, BeforeValidator(_one_socket)]


class WorkflowSpec(BaseModel):
    """One workflow definition; immutable once saved as a version."""

    model_config = ConfigDict(extra="forbid")

    components: dict[str, ComponentSpec] = Field(default_factory=dict)
    connections: list[Connection] = Field(default_factory=list)
    inputs: dict[str, list[str]] = Field(default_factory=dict)
    outputs: dict[str, OutputRef] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    max_runs_per_component: int | None = None
    connection_type_validation: bool = True
    # Hayhooks: the components that stream (names, or "all"); None streams the last streaming-capable one.
    streaming_components: list[str] | Literal["all"] | None = None

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs_as_lists(cls, value: Any) -> Any:
        # Hayhooks allows a single "comp.socket" string per input; we always store a list.
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @property
    def canvas(self) -> dict[str, Any]:
        meta = self.metadata.get(STACKYARD_META)
        return meta if isinstance(meta, dict) else {}

    def haystack_dict(self) -> dict[str, Any]:
        """The part plain Haystack understands (no ``inputs``/``outputs``/``streaming_components``)."""
        data = self.model_dump(mode="json", exclude=set(HAYHOOKS_KEYS))
        if data["max_runs_per_component"] is None:
            del data["max_runs_per_component"]
        return data


def split_socket(ref: str) -> tuple[str, str | None]:
    """``'llm.replies'`` → ``('llm', 'replies')``; a bare component name has no socket."""
    name, _, socket = ref.partition(".")
    return name, socket or None


# Limits of one document, checked before the work: raw size, nesting, and what YAML aliases add.
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_EXPANSION = 100_000
_FLATTEN = "write the repeated parts out or drop the anchors (&name) and aliases (*name)"


class _TooDeep(Exception):
    def __init__(self, line: int | None):
        self.line = line


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of silently keeping the last one, and
    stops past ``MAX_DEPTH`` nested collections: PyYAML's composer recurses per level, and its scanner
    re-walks every open ``[``/``{`` level for each token it reads ahead (quadratic in the nesting)."""

    def __init__(self, stream: str | bytes):
        super().__init__(stream)
        self._depth = 0

    def _flow_level_checked(self) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise _TooDeep(self.get_mark().line + 1)

    def fetch_flow_sequence_start(self) -> None:
        self._flow_level_checked()
        super().fetch_flow_sequence_start()

    def fetch_flow_mapping_start(self) -> None:
        self._flow_level_checked()
        super().fetch_flow_mapping_start()

    def _nested(self, compose: Any, anchor: str | None) -> yaml.Node:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _TooDeep(self.peek_event().start_mark.line + 1)
        try:
            return compose(anchor)
        finally:
            self._depth -= 1

    def compose_sequence_node(self, anchor: str | None) -> yaml.Node:
        return self._nested(super().compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor: str | None) -> yaml.Node:
        return self._nested(super().compose_mapping_node, anchor)


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            break  # construct_mapping refuses it with PyYAML's own message
        if key in seen:
            raise _DuplicateKey(key, key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int):
        self.key, self.line = key, line


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)
# The one non-standard tag Haystack's own dumps() writes (for tuples); stored as a list, as JSON has no tuple.
# Every other tag stays refused (SafeLoader's "could not determine a constructor").
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:python/tuple", yaml.SafeLoader.construct_sequence)


def _parse_issue(message: str) -> WorkflowInvalid:
    return WorkflowInvalid([Issue(IssueCode.PARSE, message=message)])


def _too_deep(line: int | None) -> WorkflowInvalid:
    where = f" (line {line})" if line else ""
    return _parse_issue(f"The document nests more than {MAX_DEPTH} levels deep{where}; the limit is {MAX_DEPTH}. "
                        "Flatten the nested lists and mappings.")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases would expand it past the limits, before any object is built.

    PyYAML shares an aliased node, so "billion laughs" costs nothing to load but expands when stored
    as JSON. Sizes are computed once per distinct node (iteratively), so this is linear in the text.
    """
    sizes: dict[int, tuple[int, int, int]] = {}  # id(node) → (elements, characters, depth) written out
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            parts = [sizes[id(child)] for child in _children(node)]
            sizes[key] = (1 + sum(p[0] for p in parts), 2 + sum(p[1] for p in parts),
                          1 + max((p[2] for p in parts), default=0))
        elif isinstance(node, yaml.ScalarNode):
            sizes[key] = (1, len(node.value) + 3, 0)
        elif key in open_nodes:  # while a node is open, only its own descendants are visited
            raise _parse_issue(f"The list or mapping on line {node.start_mark.line + 1} contains an alias to "
                               f"itself, which has no end when written out; {_FLATTEN}.")
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    elements, characters, depth = sizes[id(root)]
    added = elements - len(sizes)
    if added > MAX_ALIAS_EXPANSION or (added and characters > MAX_DOCUMENT_BYTES):
        raise _parse_issue(f"YAML aliases expand this document to {elements:,} elements and about {characters:,} "
                           f"characters; the limits are {MAX_ALIAS_EXPANSION:,} elements added by aliases and "
                           f"{MAX_DOCUMENT_BYTES:,} characters in all: {_FLATTEN}.")
    if depth > MAX_DEPTH:
        raise _too_deep(None)


def _compose_checked(text: str | bytes) -> Any:
    """What ``yaml.load`` does, with the expansion check between composing the nodes and building objects."""
    loader = _UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_expansion(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def load_document(text: str | bytes) -> dict[str, Any]:
    """Parse YAML (or JSON, a subset of it) into a dict, refusing duplicate keys, non-mappings and
    documents past the limits (``MAX_DOCUMENT_BYTES``, ``MAX_DEPTH``, ``MAX_ALIAS_EXPANSION``)."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise _parse_issue(f"The document is {len(text):,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}. "
                           "Split large prompts or data out of the workflow.")
    try:
        data = _compose_checked(text)
    except _DuplicateKey as dup:
        raise WorkflowInvalid([Issue(IssueCode.DUPLICATE_NAME, node=str(dup.key),
            message=f"'{dup.key}' is defined twice (line {dup.line}); give each component a unique name.")]) from None
    except _TooDeep as deep:
        raise _too_deep(deep.line) from None
    except RecursionError:  # a last guard: no nesting may turn into a 500
        raise _too_deep(None) from None
    except yaml.YAMLError as exc:
        raise _parse_issue(f"Not valid YAML or JSON: {exc}") from None
    except ValueError as exc:  # e.g. a date such as 2024-13-01, or an integer of over 4300 digits
        raise _parse_issue(f"Not valid YAML or JSON: a value cannot be read ({str(exc).split(';')[0]}); "
                           "quote it to keep it as text.") from None
    if not isinstance(data, dict):
        raise _parse_issue("A workflow file must be a mapping with 'components' and 'connections' at the top level.")
    return data


def check_depth(data: Any, *, limit: int = MAX_DEPTH) -> None:
    """Refuse lists and mappings nested more than ``limit`` levels deep (iteratively, so it cannot recurse).

    Deep data would make pydantic, ``copy.deepcopy``, JSON and Haystack recurse until a ``RecursionError``.
    """
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(data, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            children = [(str(key), item) for key, item in value.items()]
        elif isinstance(value, (list, tuple)):
            children = [(str(index), item) for index, item in enumerate(value)]
        else:
            continue
        if depth > limit:
            field = ".".join(path[:6]) + (".…" if len(path) > 6 else "")
            node = path[1] if len(path) > 1 and path[0] == "components" else None
            raise WorkflowInvalid([Issue(IssueCode.SHAPE, node=node, field=field or None,
                message=f"{field or 'The document'} nests more than {limit} levels deep; the limit is {limit}. "
                        "Flatten the nested lists and mappings.")])
        # Only the first few path parts are ever reported, so deeper ones are not kept.
        stack.extend((item, depth + 1, path + (key,) if len(path) < 7 else path) for key, item in children)


def spec_from_dict(data: dict[str, Any]) -> WorkflowSpec:
    """Check the document's shape; every problem becomes an Issue naming the field."""
    check_depth(data)
    try:
        return WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            node = loc[1] if len(loc) > 1 and loc[0] == "components" else None
            issues.append(Issue(IssueCode.SHAPE, node=node, field=".".join(loc),
                                message=f"{'.'.join(loc) or 'document'}: {err['msg']}"))
        raise WorkflowInvalid(issues) from None


def parse_definition(text: str | bytes) -> WorkflowSpec:
    return spec_from_dict(load_document(text))


def to_yaml(spec: WorkflowSpec) -> str:
    """Hayhooks-style YAML: Haystack's keys first, then ``inputs``/``outputs``."""
    data = spec.haystack_dict()
    for key in HAYHOOKS_KEYS:
        if getattr(spec, key):
            data[key] = getattr(spec, key)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def to_json(spec: WorkflowSpec) -> str:
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True)
