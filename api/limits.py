"""Per-key rate limits and per-app concurrency caps.

On Redis (the production broker) the counters are shared by every web process; with the embedded
broker they live in this process, which is the only web process then.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

from workflows.errors import StackyardError
from worker.notify import redis_client


class TooManyRequests(StackyardError):
    status = 429


_local_lock = threading.Lock()
_local_windows: dict[tuple[str, int], int] = defaultdict(int)
_local_active: dict[str, int] = defaultdict(int)
ACTIVE_TTL_SECONDS = 600  # a crashed web process cannot hold a slot longer than this


def check_rate(key_id: str, per_minute: int) -> None:
    window = int(time.time() // 60)
    client = redis_client()
    if client is not None:
        name = f"stackyard:rate:{key_id}:{window}"
        with client.pipeline(transaction=False) as pipe:
            pipe.incr(name)
            pipe.expire(name, 120)
            count = pipe.execute()[0]
    else:
        with _local_lock:
            _local_windows[(key_id, window)] += 1
            count = _local_windows[(key_id, window)]
    if count > per_minute:
        retry = 60 - int(time.time() % 60)
        raise TooManyRequests(f"Rate limit of {per_minute} requests/min for this key exceeded; retry in {retry} s "
                              "or ask for a key with a higher --rate.")


@contextlib.contextmanager
def concurrency_slot(slug: str, limit: int) -> Iterator[None]:
    client = redis_client()
    name = f"stackyard:active:{slug}"
    if client is not None:
        with client.pipeline(transaction=False) as pipe:
            pipe.incr(name)
            pipe.expire(name, ACTIVE_TTL_SECONDS)
            active = pipe.execute()[0]
    else:
        with _local_lock:
            _local_active[slug] += 1
            active = _local_active[slug]
    try:
        if active > limit:
            raise TooManyRequests(f"App '{slug}' is already serving {limit} requests (its max concurrency); retry shortly.")
        yield
    finally:
        if client is not None:
            client.decr(name)
        else:
            with _local_lock:
                _local_active[slug] -= 1
