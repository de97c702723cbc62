"""SQL tables of published apps: publications (``apps.publishing``) and API keys (``apps.keys``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from store.clock import utcnow
from workflows.models import new_id


class Publication(SQLModel, table=True):
    """A version served as a chat app under ``slug``; republishing swaps ``version_id`` in one UPDATE."""

    slug: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(foreign_key="workflow.id", index=True, ondelete="CASCADE", max_length=32)
    version_id: str = Field(foreign_key="workflow_version.id", ondelete="CASCADE", max_length=32)
    message_input: str = Field(max_length=200)
    history_input: str | None = Field(default=None, max_length=200)
    reply_output: str = Field(max_length=200)
    sources_output: str | None = Field(default=None, max_length=200)
    max_concurrency: int = 8
    # Set when the version went live although its publish check failed, or without one (apps.checks).
    check_warning: str | None = None
    # What a version must pass on a test set before it goes live (evaluations.gate.Gate), and the verdict on the
    # live version (with an override's reason when an admin switched anyway).
    gate: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))
    gate_result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True),
                                                                              nullable=True))
    # What the app remembers of a conversation (conversations.memory.Memory); None: the default policy.
    memory: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


MAX_KEY_RATE_PER_MINUTE = 100_000
"""The highest request rate an API key may be given, per minute."""


class ApiKey(SQLModel, table=True):
    """An API key, stored only as a SHA-256 hash; ``prefix`` identifies it in lists and logs."""

    __tablename__ = "api_key"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(default="", max_length=200)
    prefix: str = Field(index=True, max_length=16)
    key_hash: str = Field(unique=True, max_length=64)
    app_slug: str | None = Field(default=None, max_length=64, description="None = every app")
    rate_per_minute: int = 60
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
