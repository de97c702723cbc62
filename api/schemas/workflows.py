"""Shapes of workflows and their versions: create, rename, read, validate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from workflows.bounds import Text


class WorkflowCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    description: Text = Field(default="", max_length=2000)
    spec: dict[str, Any] | None = None
    note: Text = Field(default="", max_length=2000)


class WorkflowUpdate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=2000)


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
    note: Text = Field(default="", max_length=2000)


class VersionPublic(BaseModel):
    id: str
    workflow_id: str
    number: int
    note: str
    needs_gpu: bool
    created_at: datetime
    spec: dict[str, Any]


class ValidationResult(BaseModel):
    valid: bool
    issues: list[dict[str, Any]]
    warnings: list[dict[str, Any]] = Field(default_factory=list, description=(
        "What this machine lacks for the workflow to run (e.g. a model it cannot load); it still saves"))


