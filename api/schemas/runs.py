"""Shapes of runs: start one, read one with its node rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, computed_field

from runs.lifecycle import TERMINAL_STATES
from runs.models import NodeState, RunState
from workflows.bounds import PositiveInt32


class RunCreate(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict)
    # Strict: a JSON true or "2" is not a number here, as the schema says.
    version: PositiveInt32 | None = Field(default=None, strict=True, description="Default: the newest version")
    wait: float | None = Field(default=None, ge=0, le=300, strict=True, description="Seconds to wait for the result.")


class NodeRunPublic(BaseModel):
    id: int | None = None
    node: str
    component_type: str
    attempt: int
    state: NodeState
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None
    notice: str | None = None
    output_preview: Any = None
    output_chars: int | None = None    # an agent's tool call: its whole result's length (GET …/nodes/{id}/output)


class RunPublic(BaseModel):
    id: str
    workflow_id: str
    version_id: str
    state: RunState
    queue: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: str | None
    attempts: int
    worker: str | None
    model_loads: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    notice: str | None = None
    node_runs: list[NodeRunPublic] = Field(default_factory=list)

    @computed_field(description="True once the run has ended (succeeded, failed or cancelled): stop polling.")
    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES
