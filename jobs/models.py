"""SQL tables of batch jobs and schedules (registered on the same metadata as every room's tables).

A **job** runs one workflow version over many items; each **job item** is one row with its inputs,
fixed when the job is created, and its outcome. A **schedule** creates a job from a stored definition
at each tick of a cron expression; each tick it handles is one **schedule fire** row, unique per
(schedule, tick), which is what makes two schedulers fire a tick once. State changes go through
``jobs.lifecycle`` (jobs and items) and ``jobs.schedules`` (schedules), never through attributes.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.clock import utcnow
from workflows.models import new_id


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"     # every item succeeded
    FAILED = "failed"           # finished, and at least one item failed (retry the failed ones)
    CANCELLED = "cancelled"


class ItemState(str, enum.Enum):
    PENDING = "pending"         # waiting for a free slot (concurrency, rate, retry backoff)
    QUEUED = "queued"           # its id is on the queue
    RUNNING = "running"         # claimed by a worker, which renews ``heartbeat_at``
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ScheduleState(str, enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"


class FireState(str, enum.Enum):
    FIRED = "fired"             # a job was created for this tick
    MISSED = "missed"           # no scheduler ran in time: not replayed (see jobs.schedules)
    FAILED = "failed"           # the job could not be created (e.g. its folder is empty now)


MAX_CONCURRENCY = 1000
"""The most items a job (or each job of a schedule) keeps in flight."""
MAX_RATE_PER_MINUTE = 100_000
"""The highest rate limit a job takes, in items started per minute."""


class JobSettings(SQLModel):
    """What a job (or each job of a schedule) does with its items."""

    mapping: dict[str, str] = Field(default_factory=dict, sa_type=JSON,
                                    description="Declared input → column (CSV), key (JSONL) or 'path' (files)")
    fixed: dict[str, Any] = Field(default_factory=dict, sa_type=JSON,
                                  description="Inputs given to every item")
    concurrency: int = Field(default=4, ge=1, le=MAX_CONCURRENCY, description="Items in flight at most")
    rate_per_minute: float | None = Field(default=None, gt=0, description="Items started per minute at most")


class Job(JobSettings, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(default="", max_length=200)
    workflow_id: str = Field(foreign_key="workflow.id", index=True, ondelete="CASCADE", max_length=32)
    version_id: str = Field(foreign_key="workflow_version.id", ondelete="CASCADE", max_length=32)
    state: JobState = Field(default=JobState.QUEUED, index=True)
    queue: str = Field(default="cpu", max_length=50)
    source: dict[str, Any] = Field(default_factory=dict, sa_type=JSON,
                                   description="What the items came from (not the data itself)")
    total: int = 0
    schedule_id: str | None = Field(default=None, foreign_key="schedule.id", index=True, ondelete="SET NULL",
                                    max_length=32)
    next_slot_at: datetime | None = Field(default=None, description="Earliest start of the next item (rate)")
    soft_time_limit: float = 600.0
    hard_time_limit: float = 660.0
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    pumped_at: datetime | None = None


class JobItem(SQLModel, table=True):
    __tablename__ = "job_item"
    __table_args__ = (UniqueConstraint("job_id", "item_index"),
                      Index("ix_job_item_job_state_index", "job_id", "state", "item_index"))

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", ondelete="CASCADE", max_length=32)
    item_index: int
    state: ItemState = ItemState.PENDING
    inputs: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    outputs: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    error: str | None = None
    documents_written: int | None = None
    attempts: int = 0
    dispatches: int = 0
    worker: str | None = Field(default=None, max_length=200)
    available_at: datetime | None = None
    dispatched_at: datetime | None = None
    heartbeat_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    scores: dict[str, Any] | None = Field(default=None, sa_type=JSON, description=(
        "An evaluation's scores of this item's outputs, by the worker that ran it ({'scores', 'errors'})"))


class Schedule(JobSettings, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(unique=True, min_length=1, max_length=200)
    workflow_id: str = Field(foreign_key="workflow.id", index=True, ondelete="CASCADE", max_length=32)
    version: int | None = Field(default=None, description="None: the newest version at each fire")
    cron: str = Field(max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    state: ScheduleState = Field(default=ScheduleState.ACTIVE, index=True)
    source: dict[str, Any] = Field(default_factory=dict, sa_type=JSON,
                                   description="The item source as given, data included")
    next_fire_at: datetime = Field(index=True, description="The next tick not handled yet (UTC)")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ScheduleFire(SQLModel, table=True):
    __tablename__ = "schedule_fire"
    __table_args__ = (UniqueConstraint("schedule_id", "fire_time"),)

    id: int | None = Field(default=None, primary_key=True)
    schedule_id: str = Field(foreign_key="schedule.id", ondelete="CASCADE", max_length=32)
    fire_time: datetime = Field(description="The cron tick (UTC)")
    state: FireState = FireState.FIRED
    job_id: str | None = Field(default=None, foreign_key="job.id", ondelete="SET NULL", max_length=32)
    missed: int = Field(default=0, description="Ticks a 'missed' row stands for")
    scheduler: str = Field(default="", max_length=200)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
