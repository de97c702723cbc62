"""Shapes of the OpenAI-compatible chat completions request."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workflows.bounds import Text


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: Any = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens…: accepted, the workflow decides
    model: Text = Field(description="The published app's slug")
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = Field(default=False, strict=True)
