"""Fixtures that run real Stackyard processes: Redis + PostgreSQL, or the embedded SQLite broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.specs import REMOTE_LLM_ENV
from tests.support.stack import REDIS_URL, Stack, model_paths_env, postgres_stack, redis_db

TINY = "stackyard-test/tiny-chat"
TINY_COLD = "stackyard-test/tiny-chat-cold"   # loaded by one test only, to observe a cold load
# Each test session flushes this database; parallel sessions on one machine pick different bases.
REDIS_DB = redis_db(int(os.environ.get("STACKYARD_TEST_REDIS_DB", "9")))


def _stack(kind: str, root: Path, tiny_model: Path, cold_model: Path) -> Iterator[Stack]:
    env = {**model_paths_env({TINY: tiny_model, TINY_COLD: cold_model}), **REMOTE_LLM_ENV}
    if kind == "redis":
        redis.Redis.from_url(f"{REDIS_URL}/{REDIS_DB}").flushdb()
        with postgres_stack(root, broker_url=f"{REDIS_URL}/{REDIS_DB}", extra_env=env) as stack:
            yield stack
        return
    broker = f"sqla+sqlite:///{root / 'data' / 'broker.db'}"
    stack = Stack(root=root, database_url=f"sqlite:///{root / 'data' / 'stackyard.db'}", broker_url=broker,
                  extra_env={**env, "STACKYARD_BROKER_URL": broker})
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module", params=["redis", "embedded"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path,
          cold_model: Path) -> Iterator[Stack]:
    """Web server running; tests start the workers they need."""
    gen = _stack(request.param, tmp_path_factory.mktemp(f"stack-{request.param}"), tiny_model, cold_model)
    stack = next(gen)
    stack.kind = request.param
    stack.start_web()
    yield stack
    for _ in gen:
        pass
