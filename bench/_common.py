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

from tests.support.stack import REDIS_URL, Stack, postgres_stack, wait_until  # noqa: E402

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


def wait_finished(stack: Stack, path: str, ends: tuple[str, ...], timeout: float = 900) -> dict:
    """The resource at ``path`` once its state is one of ``ends``, with ``seconds`` from its creation to its end.
    Polled once a second on one connection: the resource's own timestamps are the measurement, and a busy poller
    would take CPU from the workers being measured."""
    from datetime import datetime

    import httpx

    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        done = wait_until(lambda: (j := client.get(path).json())["state"] in ends and j, timeout=timeout,
                          interval=1.0, message=path)
    done["seconds"] = (datetime.fromisoformat(done["finished_at"]) -
                       datetime.fromisoformat(done["created_at"])).total_seconds()
    return done


def run_job(stack: Stack, body: dict, timeout: float = 900) -> dict:
    """A batch job run to its end (it must succeed), with ``seconds`` from its creation to its end."""
    response = stack.api("POST", "/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    done = wait_finished(stack, f"/api/v1/jobs/{response.json()['id']}", ("succeeded", "failed", "cancelled"),
                         timeout)
    assert done["state"] == "succeeded", done
    return done
