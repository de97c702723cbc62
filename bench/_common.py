"""What the benchmarks share: a Redis + PostgreSQL stack of real Stackyard processes."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.support.stack import REDIS_URL, Stack, postgres_stack  # noqa: E402


# Benchmarks measure what an operator runs: the settings test stacks change for speed are set back to their
# defaults here (test stacks skip building the editor's palette at start).
PRODUCT_DEFAULTS = {"STACKYARD_EDITOR_WARM_UP": "true"}


@contextlib.contextmanager
def redis_postgres_stack(name: str, redis_db: int, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A fresh PostgreSQL database and Redis db index; processes are started by the caller, stopped here."""
    import redis

    redis.Redis.from_url(f"{REDIS_URL}/{redis_db}").flushdb()
    with postgres_stack(Path(tempfile.mkdtemp(prefix=f"stackyard-{name}-")), broker_url=f"{REDIS_URL}/{redis_db}",
                        extra_env={**PRODUCT_DEFAULTS, **(extra_env or {})}) as stack:
        stack.files_root.mkdir(parents=True, exist_ok=True)
        yield stack
