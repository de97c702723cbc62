"""What a chat app remembers: the history a turn's workflow gets, cut by the app's memory policy.

A policy keeps the last ``turns`` turns (a turn is a user message and the replies after it); or as many recent
turns as fit in ``tokens`` (Haystack's ``SlidingWindowCompactor`` with its ``ApproximateTokenCounter``: about four
characters a token; a note standing where older turns were removed says how many messages it replaced); or the
last ``turns`` turns after a summary of the ones before, written by a chosen chat model (``summarizer``) and kept
with the conversation, so each turn summarizes only the turns that just left the window. Leading system
messages are always kept. The history reaches the workflow as Haystack ``ChatMessage`` objects on its
declared history input (``workflows.execute``), and the prompt built from it shows in the run's trace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evaluations.metrics import Judge, chat_model
from workflows.execute import MAX_HISTORY_CHARS, chat_messages

log = logging.getLogger("stackyard.conversations")
STORED_TURNS_READ = 200
"""The most stored turns a conversation's next turn reads before the policy cuts them."""


class Memory(BaseModel):
    """An app's memory policy."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["turns", "tokens", "summary"] = Field(
        default="turns", description="Keep the last `turns` turns; the recent turns that fit in `tokens`; or the last "
                                     "`turns` turns after a summary of the ones before (by `summarizer`)")
    turns: int = Field(default=10, ge=0, le=STORED_TURNS_READ, strict=True, description="Turns kept word for word "
                                                                                        "(modes turns and summary)")
    tokens: int = Field(default=2000, ge=50, le=1_000_000, strict=True, description="Token budget (mode tokens; "
                                                                                     "about 4 characters a token)")
    summarizer: Judge | None = Field(default=None, description="The chat model that summarizes older turns (mode "
                                                               "summary): an OpenAI-compatible server (api_base_url, "
                                                               "checked like every outbound URL) or OpenAI")

    @model_validator(mode="after")
    def _summarizer(self) -> Memory:
        if self.mode == "summary" and self.summarizer is None:
            raise ValueError("memory mode 'summary' needs a summarizer {model, api_base_url} (or api_key_env)")
        return self


@dataclass
class Earlier:
    """A kept conversation's turns before the window: its stored summary (of turns 1 .. ``summarized``), and the
    turns that left the window since (``summarized`` + 1 .. ``upto``) as messages."""

    summary: str | None
    summarized: int
    upto: int
    messages: list[dict[str, str]]


SUMMARY_NOTE = "Summary of the conversation before the messages that follow: "
SUMMARY_INSTRUCTION = ("Summarize the conversation below for an assistant that will continue it: keep names, facts, "
                       "numbers, decisions and open questions; at most 150 words; no preamble.")
MAX_SUMMARY_INPUT_CHARS = 50_000
MAX_SUMMARY_CHARS = 4_000


def remember(history: list[dict[str, str]], memory: Memory,
             earlier: Earlier | None = None) -> tuple[list[dict[str, str]], tuple[str, int] | None]:
    """What the workflow gets of ``history`` by the policy, and (summary mode, a kept conversation) the summary
    to store with it: (its text, the last turn it covers), or None when nothing new was summarized. A summarizer
    that fails leaves the turn answered from the kept turns and the summary stored before (logged)."""
    if memory.mode != "summary":
        return cut(history, memory), None
    kept = cut(history, memory.model_copy(update={"mode": "turns"}))
    system_end = next((i for i, m in enumerate(kept) if m["role"] != "system"), len(kept))
    stored = None
    if earlier is None:                    # the client sent the whole conversation: summarize what the window left
        start = next((i for i, m in enumerate(history) if m["role"] != "system"), len(history))
        older = history[start:len(history) - (len(kept) - system_end)]
        summary = summarize(memory.summarizer, None, older) if older else None
    elif earlier.messages:
        summary = summarize(memory.summarizer, earlier.summary, earlier.messages)
        stored = (summary, earlier.upto) if summary else None
        summary = summary or earlier.summary
    else:
        summary = earlier.summary
    if summary:
        kept = [*kept[:system_end], {"role": "system", "content": SUMMARY_NOTE + summary}, *kept[system_end:]]
    return kept, stored


def summarize(model: Judge | None, previous: str | None, messages: list[dict[str, str]]) -> str | None:
    """A summary of ``messages`` (after ``previous``, the summary of what came before them) by ``model``; None
    when it gives none (unreachable, an error, an empty reply)."""
    from haystack.dataclasses import ChatMessage

    if model is None:
        return None
    text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)[-MAX_SUMMARY_INPUT_CHARS:]
    asked = (f"Summary so far: {previous}\n\n" if previous else "") + f"Conversation:\n{text}"
    try:
        replies = chat_model(model, temperature=0).run(
            messages=[ChatMessage.from_system(SUMMARY_INSTRUCTION), ChatMessage.from_user(asked)])["replies"]
    except Exception as exc:  # noqa: BLE001 - the turn goes on without a new summary
        log.warning("could not summarize older turns with %s at %s: %s", model.model, model.api_base_url, exc)
        return None
    summary = (replies[0].text or "").strip() if replies else ""
    return summary[:MAX_SUMMARY_CHARS] or None


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
