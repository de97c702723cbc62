"""SQL tables of runs: the run (its state machine is ``runs.lifecycle``), its per-node trace rows
(``runs.trace``) and worker liveness (``runs.workers``). Schema changes go through Alembic (``store/migrations``)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import AutoString, Field, SQLModel

from store.clock import utcnow
from workflows.models import new_id


class RunState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Run(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    workflow_id: str = Field(foreign_key="workflow.id", index=True, ondelete="CASCADE", max_length=32)
    version_id: str = Field(foreign_key="workflow_version.id", index=True, ondelete="CASCADE", max_length=32)
    state: RunState = Field(default=RunState.QUEUED, index=True)
    queue: str = Field(default="cpu", max_length=50)
    inputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    outputs: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = None
    attempts: int = 0
    worker: str | None = Field(default=None, max_length=200)
    model_loads: int = 0
    cancel_requested: bool = False
    stream_node: str | None = Field(default=None, max_length=200, description="Component whose tokens are streamed")
    soft_time_limit: float = 600.0
    hard_time_limit: float = 660.0
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None


class NodeState(str, enum.Enum):
    """What a node row says. Stored as plain text (``NodeRun.state``), so a new state needs no migration."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"     # its attempt's worker died mid-node; the run went on without that attempt


class NodeRun(SQLModel, table=True):
    """One component run of one attempt of a run (written by ``runs.trace``)."""

    __tablename__ = "node_run"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True, ondelete="CASCADE", max_length=32)
    attempt: int = 0
    node: str = Field(max_length=200)
    component_type: str = Field(default="", max_length=300)
    state: NodeState = Field(default=NodeState.RUNNING, sa_type=AutoString(length=20))  # text: no migration per state
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    duration_ms: float | None = None
    error: str | None = None
    notice: str | None = None      # it worked, but deserves a look (e.g. a retriever found no documents)
    output_preview: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # An agent's tool call: its whole result as JSON text (up to runs.trace.FULL_OUTPUT_CHARS), for download.
    output_full: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    output_chars: int | None = None      # how long the whole result was (output_full may hold less)


class WorkerBeat(SQLModel, table=True):
    """A live worker process and the queues it consumes, renewed every few seconds by its reaper thread."""

    __tablename__ = "worker_beat"

    name: str = Field(primary_key=True, max_length=200)
    queues: str = Field(default="", max_length=200)
    last_seen: datetime = Field(default_factory=utcnow)
