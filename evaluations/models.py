"""SQL tables of evaluations: test sets (named, each edit a new revision of cases) and evaluation runs (a pinned
workflow version over a pinned test-set revision, run as a batch job, then scored: one result row per case).

A case keeps its ``key`` across revisions, so two runs are compared case by case, never by position. State
changes of an evaluation go through ``evaluations.lifecycle``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.clock import utcnow
from workflows.models import new_id


class TestSet(SQLModel, table=True):
    __tablename__ = "test_set"
    __test__ = False                      # not a pytest class

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(index=True, unique=True, min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    revision: int = 0                     # the newest revision's number
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class TestSetRevision(SQLModel, table=True):
    """One immutable revision of a test set's cases: editing writes the next one; an evaluation pins one."""

    __tablename__ = "test_set_revision"
    __table_args__ = (UniqueConstraint("test_set_id", "number"),)
    __test__ = False

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    test_set_id: str = Field(foreign_key="test_set.id", index=True, ondelete="CASCADE", max_length=32)
    number: int
    case_count: int = 0
    note: str = Field(default="", max_length=500)      # what changed
    created_at: datetime = Field(default_factory=utcnow)


class TestCase(SQLModel, table=True):
    __tablename__ = "test_case"
    __table_args__ = (UniqueConstraint("revision_id", "key"), Index("ix_test_case_revision_position",
                                                                       "revision_id", "position"))
    __test__ = False

    id: int | None = Field(default=None, primary_key=True)
    revision_id: str = Field(foreign_key="test_set_revision.id", ondelete="CASCADE", max_length=32)
    key: str = Field(max_length=100)                   # the case's id, the same in every revision
    position: int
    inputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    expected_answer: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # the sources a right answer finds: [{"document_id", "document", "snippet"}]; ids and a gold snippet survive
    # re-chunking, chunk ids do not
    expected_sources: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class EvalState(str, enum.Enum):
    RUNNING = "running"          # its job runs the cases
    SCORING = "scoring"          # the job is over; a worker scores the results
    DONE = "done"
    FAILED = "failed"            # could not be scored (the report says why)
    CANCELLED = "cancelled"


class Evaluation(SQLModel, table=True):
    __tablename__ = "evaluation"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    workflow_id: str = Field(foreign_key="workflow.id", index=True, ondelete="CASCADE", max_length=32)
    version_id: str = Field(foreign_key="workflow_version.id", ondelete="CASCADE", max_length=32)
    version: int
    test_set_id: str = Field(foreign_key="test_set.id", index=True, ondelete="CASCADE", max_length=32)
    revision_id: str = Field(foreign_key="test_set_revision.id", ondelete="CASCADE", max_length=32)
    revision: int
    job_id: str | None = Field(default=None, foreign_key="job.id", ondelete="SET NULL", max_length=32)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # what makes a finished run reusable: version, revision, metric settings and the knowledge-base generations
    reuse_key: str = Field(index=True, max_length=64)
    generations: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: EvalState = Field(default=EvalState.RUNNING, index=True)
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = None
    attempts: int = 0
    heartbeat_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None


class EvalResult(SQLModel, table=True):
    """One case of an evaluation: what the run gave, and its scores (None where a metric could not judge it,
    with the reason in ``errors``)."""

    __tablename__ = "evaluation_result"
    __table_args__ = (UniqueConstraint("evaluation_id", "case_key"),)

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: str = Field(foreign_key="evaluation.id", index=True, ondelete="CASCADE", max_length=32)
    case_key: str = Field(max_length=100)
    position: int
    succeeded: bool
    answer: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    prompt: str | None = Field(default=None, sa_column=Column(Text, nullable=True))   # an output named 'prompt'
    documents: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    latency_ms: float | None = None
    tokens: int | None = None          # where the generator says (OpenAI-compatible replies' usage)
    error: str | None = None
    scores: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    errors: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
