"""Shapes of conversations: a chat turn over REST, feedback, the logs and turning a reply into a test case."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluations.importing import Source
from workflows.bounds import Text


class ChatTurnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, description="The new message (a body is at most STACKYARD_MAX_BODY_BYTES)")
    conversation_id: Text | None = Field(default=None, max_length=64, description="Continue this conversation "
                                                                                  "(default: start one)")


class ChatTurn(BaseModel):
    conversation_id: str | None = Field(description="None when the installation keeps no conversations")
    message_id: str | None = Field(description="Rate the reply with POST /api/v1/apps/{slug}/messages/{message_id}/"
                                               "feedback")
    run_id: str = Field(description="Its per-node trace: GET /api/v1/runs/{run_id}")
    reply: str
    sources: list[dict[str, Any]] = Field(default_factory=list)


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    comment: Text | None = Field(default=None, max_length=2000)


class ExchangePublic(BaseModel):
    id: str
    conversation_id: str
    app: str
    position: int
    message: str
    reply: str | None
    sources: list[dict[str, Any]] | None
    run_id: str
    version: int
    latency_ms: float | None
    tokens: dict[str, int] | None
    error: str | None
    ended: bool
    rating: Literal["up", "down"] | None
    comment: str | None
    created_at: datetime


class ConversationPublic(BaseModel):
    id: str
    app: str
    title: str
    exchanges: list[ExchangePublic]
    created_at: datetime
    updated_at: datetime


class TestCaseFromReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test_set: Text = Field(min_length=1, max_length=100, description="Made if there is none of that name")
    expected_answer: Text | None = Field(default=None, max_length=20_000, description="The answer it should give")
    expected_sources: list[Source] = Field(default_factory=list, max_length=100,
                                           description="The documents it should have found")
