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
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workflows.errors import Issue, IssueCode, WorkflowInvalid

STACKYARD_META = "stackyard"


class ComponentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    init_parameters: dict[str, Any] = Field(default_factory=dict)


class Connection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sender: str
    receiver: str


class WorkflowSpec(BaseModel):
    """One workflow definition; immutable once saved as a version."""

    model_config = ConfigDict(extra="forbid")

    components: dict[str, ComponentSpec] = Field(default_factory=dict)
    connections: list[Connection] = Field(default_factory=list)
    inputs: dict[str, list[str]] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    max_runs_per_component: int | None = None
    connection_type_validation: bool = True

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
        """The part plain Haystack understands (no ``inputs``/``outputs``)."""
        data = self.model_dump(mode="json", exclude={"inputs", "outputs"})
        if data["max_runs_per_component"] is None:
            del data["max_runs_per_component"]
        return data


def split_socket(ref: str) -> tuple[str, str | None]:
    """``'llm.replies'`` → ``('llm', 'replies')``; a bare component name has no socket."""
    name, _, socket = ref.partition(".")
    return name, socket or None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of silently keeping the last one."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _DuplicateKey(key, key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int):
        self.key, self.line = key, line


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_document(text: str | bytes) -> dict[str, Any]:
    """Parse YAML (or JSON, a subset of it) into a dict, refusing duplicate keys and non-mappings."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except _DuplicateKey as dup:
        raise WorkflowInvalid([Issue(IssueCode.DUPLICATE_NAME, node=str(dup.key),
            message=f"'{dup.key}' is defined twice (line {dup.line}); give each component a unique name.")]) from None
    except yaml.YAMLError as exc:
        raise WorkflowInvalid([Issue(IssueCode.PARSE, message=f"Not valid YAML or JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise WorkflowInvalid([Issue(IssueCode.PARSE,
            message="A workflow file must be a mapping with 'components' and 'connections' at the top level.")])
    return data


def spec_from_dict(data: dict[str, Any]) -> WorkflowSpec:
    """Check the document's shape; every problem becomes an Issue naming the field."""
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
    if spec.inputs:
        data["inputs"] = spec.inputs
    if spec.outputs:
        data["outputs"] = spec.outputs
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def to_json(spec: WorkflowSpec) -> str:
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True)
