"""What a chat app remembers: the history a turn's workflow gets, cut by the app's memory policy.

A policy keeps the last ``turns`` turns (a turn is a user message and the replies after it), or as many recent
turns as fit in ``tokens`` (Haystack's ``SlidingWindowCompactor`` with its ``ApproximateTokenCounter``: about four
characters a token; a note standing where older turns were removed says how many messages it replaced). Leading
system messages are always kept. The history reaches the workflow as Haystack ``ChatMessage`` objects on its
declared history input (``workflows.execute``), and the prompt built from it shows in the run's trace.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.execute import MAX_HISTORY_CHARS, chat_messages

STORED_TURNS_READ = 200
"""The most stored turns a conversation's next turn reads before the policy cuts them."""


class Memory(BaseModel):
    """An app's memory policy."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["turns", "tokens"] = Field(default="turns", description="Keep the last `turns` turns, or the "
                                                                          "recent turns that fit in `tokens`")
    turns: int = Field(default=10, ge=0, le=STORED_TURNS_READ, strict=True, description="Turns kept (mode turns)")
    tokens: int = Field(default=2000, ge=50, le=1_000_000, strict=True, description="Token budget (mode tokens; "
                                                                                     "about 4 characters a token)")


def cut(history: list[dict[str, str]], memory: Memory) -> list[dict[str, str]]:
    """``history`` ({role, content} dicts, oldest first) as the policy keeps it, within the characters a run's
    history may hold (the newest messages first: a conversation whose old turns are long stays usable)."""
    system_end = next((i for i, m in enumerate(history) if m["role"] != "system"), len(history))
    system = newest_within(history[:system_end], MAX_HISTORY_CHARS)
    turns = newest_within(history[system_end:], MAX_HISTORY_CHARS - sum(len(m["content"]) for m in system))
    if memory.mode == "turns":
        starts = [i for i, m in enumerate(turns) if m["role"] == "user"]
        if memory.turns == 0:
            return system
        first = starts[-memory.turns] if len(starts) >= memory.turns else 0
        return system + turns[first:]
    return _within_tokens(system + turns, memory.tokens)


def newest_within(history: list[dict[str, str]], chars: int) -> list[dict[str, str]]:
    """The newest messages of ``history`` whose contents hold at most ``chars`` characters together."""
    total = 0
    for index in range(len(history) - 1, -1, -1):
        total += len(history[index]["content"])
        if total > chars:
            return history[index + 1:]
    return history


def _within_tokens(history: list[dict[str, str]], budget: int) -> list[dict[str, str]]:
    from haystack.dataclasses import ChatMessage
    from haystack.hooks.compaction import SlidingWindowCompactor
    from haystack.token_counters import ApproximateTokenCounter

    messages = chat_messages(history, field="history") + [ChatMessage.from_user(".")]   # the turn being asked
    kept = SlidingWindowCompactor(min_keep_steps=0).compact(messages, budget, ApproximateTokenCounter())
    if kept is None:
        return history
    return [{"role": m.role.value, "content": m.text or ""} for m in kept[:-1]]
