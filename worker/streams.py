"""Token streams: the worker appends each generated chunk to a per-run stream; the API reads it from the start,
so no early chunk is lost however late the reader attaches.

Two carriers, picked from the broker, so every topology streams through the same reader (the OpenAI API and
the chat page alike):

- **Redis** (``STACKYARD_BROKER_URL=redis://…``): a Redis stream per run (XADD; XREAD blocks until a chunk).
- **Embedded** (the default SQLite broker): a SQLite file beside the broker's (``streams.db``, WAL), one row
  per chunk; the reader polls it every :data:`POLL_SECONDS`. Web and worker share that folder, as they share
  the broker's file. Rows older than :data:`TTL_SECONDS` are dropped when a stream starts.

Example::

    stream = TokenStream(run_id, rec)         # a Haystack streaming_callback, on the worker
    async for item in read(run_id):           # {"t": text} …, then {"end": state, "error": …}; {} when idle
        ...
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from runs.trace import Recording, RunCancelled
from stackyard.settings import get_settings
from worker.notify import async_client, redis_client

log = logging.getLogger("stackyard.streams")
TTL_SECONDS = 3600
END = "end"
POLL_SECONDS = 0.01  # embedded reader: a chunk waits this long at most while chunks flow (plus one SQLite read)
IDLE_POLL_SECONDS = 0.2  # … and, after a quiet second (a queued run, a slow first token), this long
FORGET_EVERY_SECONDS = 60.0
EMBEDDED_PREFIX = "sqla+sqlite:///"


def stream_key(run_id: str) -> str:
    return f"stackyard:stream:{run_id}"


class _SqliteStreams:
    """Chunks of every run's stream in one SQLite file; one connection per thread (sqlite3's rule)."""

    def __init__(self, path: Path) -> None:
        self.path, self.local = path, threading.local()

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a chunk is not worth an fsync; the reply is in the run row
            conn.execute("CREATE TABLE IF NOT EXISTS chunk (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, "
                         "text TEXT, end_state TEXT, error TEXT, at REAL NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS chunk_run ON chunk (run_id, seq)")
            conn.execute("CREATE INDEX IF NOT EXISTS chunk_at ON chunk (at)")
            self.local.conn = conn
        return conn

    def add(self, run_id: str, fields: dict[str, str]) -> None:
        self.connection().execute("INSERT INTO chunk (run_id, text, end_state, error, at) VALUES (?, ?, ?, ?, ?)",
                                  (run_id, fields.get("t"), fields.get(END), fields.get("error"), time.time()))

    def forget_old(self) -> None:
        """Drop chunks older than the TTL, at most once a minute per process (streams start often)."""
        now = time.time()
        if now - getattr(self, "forgot_at", 0.0) < FORGET_EVERY_SECONDS:
            return
        self.forgot_at = now
        self.connection().execute("DELETE FROM chunk WHERE at < ?", (now - TTL_SECONDS,))

    def after(self, run_id: str, seq: int) -> list[tuple[int, dict[str, str]]]:
        rows = self.connection().execute("SELECT seq, text, end_state, error FROM chunk WHERE run_id = ? AND seq > ? "
                                         "ORDER BY seq LIMIT 100", (run_id, seq)).fetchall()
        return [(row[0], {"t": row[1]} if row[2] is None else {END: row[2], "error": row[3] or ""}) for row in rows]


@functools.lru_cache(maxsize=4)
def _sqlite_for(broker_url: str) -> _SqliteStreams:
    return _SqliteStreams(Path(broker_url.removeprefix(EMBEDDED_PREFIX)).parent / "streams.db")


def _embedded() -> _SqliteStreams | None:
    url = get_settings().resolved_broker_url
    return _sqlite_for(url) if url.startswith(EMBEDDED_PREFIX) else None


class TokenStream:
    """A Haystack streaming callback that forwards text to the run's stream and honours cancels."""

    def __init__(self, run_id: str, rec: Recording, special_tokens: list[str] | None = None) -> None:
        self.run_id, self.key, self.rec = run_id, stream_key(run_id), rec
        self.client, self.embedded = redis_client(), _embedded()
        if self.embedded is not None:
            self._best_effort(self.embedded.forget_old)
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
        if body:
            self._add({"t": body})

    def end(self, state: str, error: str | None) -> None:
        self._add({END: state, "error": error or ""})

    def _add(self, fields: dict[str, str]) -> None:
        if self.client is not None:
            self.client.xadd(self.key, fields)
            self.client.expire(self.key, TTL_SECONDS)
        elif self.embedded is not None:
            self._best_effort(self.embedded.add, self.run_id, fields)

    @staticmethod
    def _best_effort(write: Any, *args: Any) -> None:
        """A chunk the stream file cannot take (locked too long, disk full) is skipped, not the run's failure:
        the reply is complete in the run's outputs, which readers fall back to."""
        try:
            write(*args)
        except sqlite3.Error as exc:
            log.warning("token stream file: %s (%s); the reply still arrives whole", type(exc).__name__, exc)


def special_tokens(component: Any) -> list[str]:
    tokenizer = getattr(getattr(component, "pipeline", None), "tokenizer", None)
    return list(getattr(tokenizer, "all_special_tokens", []) or [])


def available() -> bool:
    return redis_client() is not None or _embedded() is not None


async def read(run_id: str, *, block_ms: int = 5000) -> AsyncIterator[dict[str, str]]:
    """Yield ``{"t": text}`` chunks, then one ``{"end": state, "error": ...}``; yields ``{}`` on idle ticks
    (at least every ``block_ms``)."""
    embedded = _embedded() if redis_client() is None else None
    items = _read_sqlite(embedded, run_id, block_ms) if embedded is not None else _read_redis(run_id, block_ms)
    async for item in items:
        yield item
        if END in item:
            return


async def _read_redis(run_id: str, block_ms: int) -> AsyncIterator[dict[str, str]]:
    client = async_client()
    last = "0"
    while True:
        result = await client.xread({stream_key(run_id): last}, block=block_ms, count=100)
        if not result:
            yield {}
            continue
        for entry_id, fields in result[0][1]:
            last = entry_id
            yield {k.decode(): v.decode() for k, v in fields.items()}


async def _read_sqlite(streams: _SqliteStreams, run_id: str, block_ms: int) -> AsyncIterator[dict[str, str]]:
    last, idle_since, tick_since = 0, time.monotonic(), time.monotonic()
    while True:
        rows = await asyncio.to_thread(streams.after, run_id, last)
        for seq, item in rows:
            last = seq
            yield item
        now = time.monotonic()
        if rows:
            idle_since = tick_since = now
        elif now - tick_since >= block_ms / 1000:
            tick_since = now
            yield {}
        else:  # poll fast while chunks flow, slowly while the run waits (many readers share two cores)
            await asyncio.sleep(POLL_SECONDS if now - idle_since < 1.0 else IDLE_POLL_SECONDS)
