"""SQL tables of conversations: a thread per caller and app, one row per exchange (question → reply)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.clock import utcnow
from workflows.models import new_id


class Conversation(SQLModel, table=True):
    """A thread of one app, owned by one caller: an API key (``key:<id>``) or a chat-page visitor
    (``visitor:<opaque id>`` from the page's cookie). Nobody else can read or continue it."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    app_slug: str = Field(index=True, max_length=64)
    owner: str = Field(index=True, max_length=120)
    title: str = Field(default="", max_length=200)
    exchanges: int = 0
    summary: str | None = Field(default=None, sa_type=Text, description="Memory mode summary: turns 1 .. "
                                                                         "summarized, summarized")
    summarized: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class Exchange(SQLModel, table=True):
    """One turn: the caller's message and the app's reply, with the version that answered and its run (the
    per-node trace). The reply, sources, latency, tokens and error are read from the run once it ends."""

    __tablename__ = "conversation_exchange"
    __table_args__ = (UniqueConstraint("conversation_id", "position"),
                      Index("ix_conversation_exchange_created", "created_at"))

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    conversation_id: str = Field(foreign_key="conversation.id", ondelete="CASCADE", max_length=32)
    position: int
    message: str = Field(sa_type=Text, description="As sent (a request's size is bounded by STACKYARD_MAX_BODY_BYTES)")
    run_id: str = Field(max_length=32, index=True)
    version_id: str = Field(max_length=32)
    version: int
    reply_output: str = Field(max_length=200)
    sources_output: str | None = Field(default=None, max_length=200)
    ended: bool = False
    reply: str | None = Field(default=None, sa_type=Text)
    sources: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True),
                                                                                nullable=True))
    tokens: dict[str, int] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))
    latency_ms: float | None = None
    error: str | None = Field(default=None, max_length=2000)
    rating: int | None = Field(default=None, description="1 thumbs up, -1 thumbs down")
    comment: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
