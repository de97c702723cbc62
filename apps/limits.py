"""Per-key rate limits, per-app concurrency caps and the failed-login throttle.

On Redis (the production broker) the counters are shared by every web process; with the embedded
broker they live in this process, which is the only web process then.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

from stackyard.errors import StackyardError
from stackyard.settings import get_settings
from worker.notify import redis_client


class TooManyRequests(StackyardError):
    status = 429


_local_lock = threading.Lock()
_local_windows: dict[tuple[str, int], int] = defaultdict(int)  # (counter name, window) → count
_local_active: dict[str, int] = defaultdict(int)
ACTIVE_TTL_SECONDS = 600  # a crashed web process cannot hold a slot longer than this


def _window_count(name: str, window: int, seconds: float, *, add: int) -> int:
    """Add ``add`` to a fixed-window counter (shared through Redis when there is one) and return it."""
    client = redis_client()
    if client is not None:
        key = f"stackyard:{name}:{window}"
        with client.pipeline(transaction=False) as pipe:
            pipe.incrby(key, add)
            pipe.expire(key, int(2 * seconds) + 1)
            return int(pipe.execute()[0])
    with _local_lock:
        if len(_local_windows) > 100_000:  # many clients in the embedded mode: forget closed windows
            for stale in [k for k in _local_windows if k[1] < window]:
                del _local_windows[stale]
        _local_windows[(name, window)] += add
        return _local_windows[(name, window)]


def check_rate(key_id: str, per_minute: int) -> None:
    count = _window_count(f"rate:{key_id}", int(time.time() // 60), 60, add=1)
    if count > per_minute:
        retry = 60 - int(time.time() % 60)
        raise TooManyRequests(f"Rate limit of {per_minute} requests/min for this key exceeded; retry in {retry} s "
                              "or ask for a key with a higher --rate.")


class LoginThrottled(TooManyRequests):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def admit_login_attempt(client: str) -> None:
    """Count a login attempt (form or HTTP Basic) before the password is checked; refuse it past the limit.

    Counting before checking keeps parallel guesses from slipping past the limit together, and a
    locked-out guesser learns nothing (a right password gets 429 too). :func:`login_succeeded` gives a
    successful attempt back, so only failures use up the budget. Once the window
    (``STACKYARD_LOGIN_LOCKOUT_SECONDS``) ends, logins work again.
    """
    settings = get_settings()
    seconds = settings.login_lockout_seconds
    now = time.time()
    window = int(now // seconds)
    retry = max(1, int(seconds - now % seconds + 0.999))
    if _window_count(f"login:{client}", window, seconds, add=1) > settings.login_failures_per_client:
        raise LoginThrottled(f"Too many failed logins from this client; try again in {retry} s.", retry)
    if _window_count("login:*", window, seconds, add=1) > settings.login_failures_total:
        raise LoginThrottled(f"Too many failed logins on this server; try again in {retry} s.", retry)


def login_succeeded(client: str) -> None:
    seconds = get_settings().login_lockout_seconds
    window = int(time.time() // seconds)
    _window_count(f"login:{client}", window, seconds, add=-1)
    _window_count("login:*", window, seconds, add=-1)


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
