"""Shapes of batch jobs, their items, schedules and their fires."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from jobs.models import MAX_CONCURRENCY, MAX_RATE_PER_MINUTE, FireState, ItemState, JobState, ScheduleState
from jobs.sources import SourceSpec
from workflows.bounds import PositiveInt32, Text


class JobDefinition(BaseModel):
    workflow: Text = Field(min_length=1, description="Workflow id or name")
    version: PositiveInt32 | None = Field(default=None, strict=True, description="Default: the newest version")
    source: SourceSpec
    mapping: dict[str, str] = Field(default_factory=dict, description="Declared input → column / key / 'path'")
    fixed: dict[str, Any] = Field(default_factory=dict, description="Inputs given to every item")
    concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY, strict=True,
                                    description="Items in flight at most")
    rate_per_minute: float | None = Field(default=None, gt=0, le=MAX_RATE_PER_MINUTE, strict=True,
                                          description="Items started per minute at most")


class JobCreate(JobDefinition):
    name: Text = Field(default="", max_length=200)


class JobPublic(BaseModel):
    id: str
    name: str
    workflow_id: str
    version_id: str
    state: JobState
    queue: str
    source: dict[str, Any]
    mapping: dict[str, str]
    fixed: dict[str, Any]
    concurrency: int
    rate_per_minute: float | None
    total: int
    done: int
    failed: int
    cancelled: int
    running: int
    queued: int
    pending: int
    documents_written: int | None
    eta_seconds: float | None
    schedule_id: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    notice: str | None = None


class JobItemPublic(BaseModel):
    index: int
    state: ItemState
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: str | None
    documents_written: int | None
    attempts: int
    dispatches: int
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None


class ScheduleCreate(JobDefinition):
    name: Text = Field(min_length=1, max_length=200)
    cron: Text = Field(min_length=1, max_length=200, description="5 fields, or 6 with seconds last")
    timezone: Text = Field(default="UTC", max_length=64)


class SchedulePublic(BaseModel):
    id: str
    name: str
    workflow_id: str
    version: int | None
    cron: str
    timezone: str
    state: ScheduleState
    source_type: str
    mapping: dict[str, str]
    fixed: dict[str, Any]
    concurrency: int
    rate_per_minute: float | None
    next_fire_at: datetime
    next_fires: list[datetime] = Field(default_factory=list, description="The next ticks, in the schedule's timezone")
    created_at: datetime


class FirePublic(BaseModel):
    fire_time: datetime
    state: FireState
    job_id: str | None
    job_state: JobState | None
    missed: int
    scheduler: str
    error: str | None
    created_at: datetime
