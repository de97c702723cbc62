"""Shapes of published apps and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from apps import publishing
from apps.models import MAX_KEY_RATE_PER_MINUTE
from evaluations.gate import Gate
from workflows.bounds import PositiveInt32, Text


class PublishRequest(BaseModel):
    workflow: Text = Field(min_length=1, description="Workflow id or name")
    slug: str = Field(max_length=64, json_schema_extra={"pattern": publishing.SLUG.pattern},
                      description="Lowercase letters, digits and dashes, e.g. support-bot")
    version: PositiveInt32 | None = Field(default=None, strict=True, description="Default: the newest version")
    message: Text | None = Field(default=None, max_length=200)
    history: Text | None = Field(default=None, max_length=200)
    reply: Text | None = Field(default=None, max_length=200)
    sources: Text | None = Field(default=None, max_length=200)
    max_concurrency: int | None = Field(default=None, ge=1, le=1000, strict=True)
    check: bool = Field(default=True, strict=True, description="Send a test message through the version on a worker "
                        "first; a version that cannot answer is not published")
    check_message: Text = Field(default="Hello", min_length=1, max_length=2000, description="The test message")
    force: bool = Field(default=False, strict=True, description="Publish even if the check fails; the app then "
                        "shows the problem as its check_warning")
    gate: Gate | None = Field(default=None, description="What a version must pass on a test set before it goes live "
                                                        "(kept with the app; default: the app's gate, if any)")
    override_reason: Text | None = Field(default=None, min_length=3, max_length=1000,
                                         description="Publish although the gate failed; the reason is kept with "
                                                     "the verdict")


class PublicationPublic(BaseModel):
    slug: str
    workflow_id: str
    version_id: str
    version: int | None = None
    message_input: str
    history_input: str | None
    reply_output: str
    sources_output: str | None
    max_concurrency: int
    check_warning: str | None = None
    gate: dict[str, Any] | None = Field(default=None, description="What a version must pass before it goes live")
    gate_result: dict[str, Any] | None = Field(default=None, description="The gate's verdict on the live version")
    memory: dict[str, Any] | None = Field(default=None, description="What the app remembers of a conversation "
                                                                    "(default: the last 10 turns)")
    updated_at: datetime


class GateWaiting(BaseModel):
    state: str = Field(default="gate_pending", description="Nothing changed yet")
    message: str
    evaluations: list[str] = Field(description="The evaluations the gate waits for")


class KeyCreate(BaseModel):
    name: Text = Field(default="", max_length=200)
    app: Text | None = Field(default=None, max_length=64, description="Slug the key is limited to; omit for every app")
    rate_per_minute: int = Field(default=60, ge=1, le=MAX_KEY_RATE_PER_MINUTE, strict=True)


class KeyPublic(BaseModel):
    id: str
    name: str
    prefix: str
    app_slug: str | None
    rate_per_minute: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="Shown once; only its hash is stored")


class AppRunRequest(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict)
    wait: float | None = Field(default=None, ge=0, le=300, strict=True)
