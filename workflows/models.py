"""SQL tables of workflows and their immutable versions (SQLModel). Each room keeps its own tables
(``runs.models``, ``jobs.models``, ``apps.models``, ``api.admin_sessions``); schema changes go through
Alembic (``store/migrations``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.clock import utcnow


def new_id() -> str:
    return uuid.uuid4().hex


class WorkflowBase(SQLModel):
    name: str = Field(index=True, unique=True, min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class Workflow(WorkflowBase, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WorkflowVersion(SQLModel, table=True):
    """An immutable snapshot: rows are inserted, never updated."""

    __tablename__ = "workflow_version"
    __table_args__ = (UniqueConstraint("workflow_id", "number"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    workflow_id: str = Field(foreign_key="workflow.id", index=True, ondelete="CASCADE", max_length=32)
    number: int
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    note: str = Field(default="", max_length=2000)
    needs_gpu: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class WorkflowDraft(SQLModel, table=True):
    """The editor's unfinished work on a workflow, kept as it is (validation problems included), one per workflow.
    Never run: apps, jobs and runs use versions only. Saving a version from the editor clears it."""

    __tablename__ = "workflow_draft"

    workflow_id: str = Field(primary_key=True, foreign_key="workflow.id", ondelete="CASCADE", max_length=32)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    based_on: int | None = None          # the version number the draft was started from
    updated_at: datetime = Field(default_factory=utcnow)
