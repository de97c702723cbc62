"""Errors of the workflows package.

Every problem found in a workflow is an :class:`Issue` pinned to a node and port, with a message that
names the fix. Transports (HTTP, CLI, UI) translate these exceptions at one boundary each, by class,
never by matching message text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from stackyard.errors import StackyardError


@dataclass(frozen=True)
class Issue:
    """One problem in a workflow definition.

    ``code`` is stable and machine-readable (see ``IssueCode``); ``node``/``port`` locate it on the
    canvas; ``field`` names the offending key for problems outside any node (e.g. ``inputs.query``).
    """

    code: str
    message: str
    node: str | None = None
    port: str | None = None
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class IssueCode:
    PARSE = "parse_error"
    SHAPE = "bad_shape"
    UNKNOWN_COMPONENT = "unknown_component"
    NOT_ALLOWED = "component_not_allowed"
    REMOVED_COMPONENT = "removed_component"
    BAD_PARAM = "bad_param"
    DANGEROUS_PARAM = "dangerous_param"
    MISSING_INPUT = "missing_input"
    TYPE_MISMATCH = "type_mismatch"
    DANGLING_EDGE = "dangling_edge"
    DUPLICATE_NAME = "duplicate_name"
    BAD_INPUT_MAPPING = "bad_input_mapping"
    BAD_OUTPUT_MAPPING = "bad_output_mapping"
    UNBOUNDED_CYCLE = "unbounded_cycle"
    MODEL_UNAVAILABLE = "model_unavailable"   # a warning (workflows.availability): the workflow still saves
    KNOWLEDGE_NOT_READY = "knowledge_not_ready"   # a warning: a knowledge base it reads is empty or indexing
    KNOWLEDGE_MODEL_MISMATCH = "knowledge_model_mismatch"   # a warning: the query embedder is not the base's model
    KNOWLEDGE_WRITTEN_BY_WORKFLOW = "knowledge_written_by_workflow"   # a warning: a writer bypasses the base's documents
    KNOWLEDGE_BASE_MISSING = "knowledge_base_missing"   # a warning: a knowledge base writer names no base (yet)


class WorkflowInvalid(StackyardError):
    """A workflow definition has problems; nothing was stored or run."""

    status = 422

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        first = issues[0].message if issues else "invalid workflow"
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(first + more)
