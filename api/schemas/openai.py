"""Shapes of the OpenAI-compatible chat completions request."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflows.bounds import Text


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Any = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens…: accepted, the workflow decides
    model: Text = Field(description="The published app's slug")
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = Field(default=False, strict=True)
    metadata: dict[str, Any] | None = Field(default=None, description="metadata.conversation_id continues a "
                                                                       "conversation (as the X-Conversation-Id header)")

    @field_validator("metadata")
    @classmethod
    def _conversation_id(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        given = (value or {}).get("conversation_id")
        if given is not None and (not isinstance(given, str) or not 1 <= len(given) <= 64):
            raise ValueError("metadata.conversation_id must be the conversation_id a reply gave (a string)")
        return value

    def conversation(self, header: str | None) -> str | None:
        """The conversation to continue: the header's, else ``metadata.conversation_id``."""
        return header or (self.metadata or {}).get("conversation_id")
