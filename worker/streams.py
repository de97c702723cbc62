"""Token streams: the worker appends each generated chunk to a Redis stream keyed by run id; the API
reads it from the start (XREAD from 0), so no early chunk is lost however late the reader attaches.

With the embedded broker there is no Redis; the stream is a no-op and the API sends the whole reply
when the run ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from runs.trace import Recording, RunCancelled
from worker.notify import async_client, redis_client

TTL_SECONDS = 3600
END = "end"


def stream_key(run_id: str) -> str:
    return f"stackyard:stream:{run_id}"


class TokenStream:
    """A Haystack streaming callback that forwards text to the run's stream and honours cancels."""

    def __init__(self, run_id: str, rec: Recording, special_tokens: list[str] | None = None) -> None:
        self.key, self.rec = stream_key(run_id), rec
        self.client = redis_client()
        # Local models stream through transformers' TextStreamer, which keeps special tokens such as <|end|>.
        self.special = sorted((t for t in special_tokens or [] if t), key=len, reverse=True)
        self.held = ""  # trailing whitespace, sent only if more text follows (replies are stripped at the end)

    def __call__(self, chunk: Any) -> None:
        if self.rec.cancelled.is_set():
            raise RunCancelled("cancelled by request")
        text = chunk.content or ""
        for token in self.special:
            text = text.replace(token, "")
        text = self.held + text
        body = text.rstrip()
        self.held = text[len(body):]
        if body and self.client is not None:
            self.client.xadd(self.key, {"t": body})
            self.client.expire(self.key, TTL_SECONDS)

    def end(self, state: str, error: str | None) -> None:
        if self.client is not None:
            self.client.xadd(self.key, {END: state, "error": error or ""})
            self.client.expire(self.key, TTL_SECONDS)


def special_tokens(component: Any) -> list[str]:
    tokenizer = getattr(getattr(component, "pipeline", None), "tokenizer", None)
    return list(getattr(tokenizer, "all_special_tokens", []) or [])


def available() -> bool:
    return redis_client() is not None


async def read(run_id: str, *, block_ms: int = 5000) -> AsyncIterator[dict[str, str]]:
    """Yield ``{"t": text}`` chunks, then one ``{"end": state, "error": ...}``; yields ``{}`` on idle ticks."""
    client = async_client()
    last = "0"
    while True:
        result = await client.xread({stream_key(run_id): last}, block=block_ms, count=100)
        if not result:
            yield {}
            continue
        for entry_id, fields in result[0][1]:
            last = entry_id
            item = {k.decode(): v.decode() for k, v in fields.items()}
            yield item
            if END in item:
                return
