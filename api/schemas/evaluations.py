"""Shapes of test sets and evaluations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from evaluations.importing import CaseIn
from evaluations.metrics import MetricSettings
from workflows.bounds import PositiveInt32, Text

MAX_CASES_PER_REQUEST = 1000


class TestSetCreate(BaseModel):
    __test__ = False
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="Letters, digits, '.', '_' and '-'")
    description: Text = Field(default="", max_length=2000)
    cases: list[CaseIn] = Field(min_length=1, max_length=MAX_CASES_PER_REQUEST,
                                description="More at once: import a CSV or JSONL")


class CasesAdd(BaseModel):
    cases: list[CaseIn] = Field(min_length=1, max_length=MAX_CASES_PER_REQUEST,
                                description="Added; one with the key of a case the set has replaces it")
    note: Text = Field(default="", max_length=500, description="What changed")


class FromKnowledge(BaseModel):
    knowledge_base: Text = Field(min_length=1, max_length=100)
    query_ids: list[Text] | None = Field(default=None, max_length=1000, description="Default: every retrieval "
                                                                                     "test kept as a test case")


class RevisionPublic(BaseModel):
    number: int
    case_count: int
    note: str
    created_at: datetime


class TestSetPublic(BaseModel):
    __test__ = False
    name: str
    description: str
    revision: int
    case_count: int
    revisions: list[RevisionPublic] = Field(default_factory=list)
    updated_at: datetime


class CasePage(BaseModel):
    revision: int
    total: int
    cases: list[dict[str, Any]]


class EvaluationCreate(BaseModel):
    workflow: Text = Field(min_length=1, description="Workflow id or name")
    version: PositiveInt32 | None = Field(default=None, strict=True, description="Default: the newest")
    test_set: Text = Field(min_length=1, max_length=100)
    revision: PositiveInt32 | None = Field(default=None, strict=True, description="Default: the newest")
    settings: MetricSettings = Field(default_factory=MetricSettings)
    concurrency: int | None = Field(default=None, ge=1, le=1000, strict=True, description="Cases in flight")
    reuse: bool = Field(default=True, strict=True, description="Answer with a finished (or running) evaluation "
                                                               "of the same version, revision, settings and "
                                                               "knowledge-base generations instead of a new one")


class EvaluationPublic(BaseModel):
    id: str
    workflow_id: str
    version: int
    test_set: str
    revision: int
    state: str
    settings: dict[str, Any]
    generations: dict[str, Any]
    summary: dict[str, Any]
    error: str | None
    job_id: str | None
    progress: dict[str, int] = Field(default_factory=dict, description="The job's cases by state")
    reused: bool = False
    created_at: datetime
    finished_at: datetime | None
