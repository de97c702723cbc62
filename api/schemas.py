"""Request and response shapes of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from workflows.models import RunState


class WorkflowCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    spec: dict[str, Any] | None = None
    note: str = Field(default="", max_length=2000)


class WorkflowUpdate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class WorkflowPublic(BaseModel):
    id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = None
    published: dict[str, int] = Field(default_factory=dict, description="slug → version number it serves")


class VersionCreate(BaseModel):
    spec: dict[str, Any]
    note: str = Field(default="", max_length=2000)


class VersionPublic(BaseModel):
    id: str
    workflow_id: str
    number: int
    note: str
    needs_gpu: bool
    created_at: datetime
    spec: dict[str, Any]


class RunCreate(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(default=None, ge=1)
    wait: float | None = Field(default=None, ge=0, le=300, description="Seconds to wait for the result.")


class NodeRunPublic(BaseModel):
    node: str
    component_type: str
    attempt: int
    state: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None
    output_preview: Any = None


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


class ValidationResult(BaseModel):
    valid: bool
    issues: list[dict[str, Any]]
