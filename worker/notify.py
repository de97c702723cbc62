"""Run-finished notifications, so a waiting request returns the moment its run ends.

On Redis the worker pushes a notice to a short-lived per-run list and the waiting API request pops it
(BLPOP: nothing is missed if the run ends before the request starts waiting). On other brokers the API
polls the database; the database stays the source of truth either way.

A notice is pushed only after the outcome is committed: ``{"state", "error"}``, plus ``"outputs"`` when
they are small enough, so a caller that needs no more than that (a chat reply) skips reading the run back.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from stackyard.settings import get_settings

TTL_SECONDS = 300
NOTICE_MAX_BYTES = 64 * 1024  # larger outputs are left to the database
BLOCK_SECONDS = 5.0  # one BLPOP blocks at most this long; longer waits loop


def key(run_id: str) -> str:
    return f"stackyard:run-done:{run_id}"


def _redis_url() -> str | None:
    url = get_settings().resolved_broker_url
    return url if url.startswith(("redis://", "rediss://")) else None


@functools.lru_cache(maxsize=1)
def redis_client():
    import redis

    url = _redis_url()
    return redis.Redis.from_url(url) if url else None


@functools.lru_cache(maxsize=1)
def async_client():  # the asyncio client for notices and token streams; None without Redis
    import redis.asyncio

    url = _redis_url()
    return redis.asyncio.Redis.from_url(url, socket_timeout=BLOCK_SECONDS + 5) if url else None


def notice(state: str, *, outputs: dict[str, Any] | None = None, error: str | None = None) -> str:
    base = {"state": state, "error": error}
    if outputs is not None:
        try:
            whole = json.dumps({**base, "outputs": outputs})
        except (TypeError, ValueError):
            whole = ""
        if 0 < len(whole) <= NOTICE_MAX_BYTES:
            return whole
    return json.dumps(base)


def announce(run_id: str, state: str, *, outputs: dict[str, Any] | None = None, error: str | None = None) -> None:
    """Tell waiters run ``run_id`` ended in ``state``. Call only after that outcome is committed."""
    client = redis_client()
    if client is None:
        return
    with client.pipeline(transaction=False) as pipe:
        pipe.rpush(key(run_id), notice(state, outputs=outputs, error=error))
        pipe.expire(key(run_id), TTL_SECONDS)
        pipe.execute()


def can_push() -> bool:
    return _redis_url() is not None


async def wait(run_id: str, seconds: float) -> dict[str, Any] | None:
    """Block until the run is announced finished (its notice) or ``seconds`` pass (None). Redis only."""
    import time

    client = async_client()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            popped = await client.blpop([key(run_id)], timeout=max(min(left, BLOCK_SECONDS), 0.01))
        except TimeoutError:
            continue
        if popped:
            async with client.pipeline(transaction=False) as pipe:  # leave it for other waiters; it expires anyway
                pipe.rpush(key(run_id), popped[1])
                pipe.expire(key(run_id), TTL_SECONDS)
                await pipe.execute()
            return parse(popped[1])
    return None


def parse(raw: bytes) -> dict[str, Any]:
    try:
        found = json.loads(raw)
    except ValueError:
        found = None
    return found if isinstance(found, dict) and "state" in found else {"state": raw.decode(errors="replace")}
