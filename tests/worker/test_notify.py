"""Run-finished notices on real Redis: what a waiting request gets, and what it must read from the database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from stackyard.settings import reset_settings_cache
from tests.support.stack import REDIS_DB, REDIS_URL
from worker import notify


@pytest.fixture
def on_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STACKYARD_BROKER_URL", f"{REDIS_URL}/{REDIS_DB}")
    reset_settings_cache()
    notify.redis_client.cache_clear()
    notify.async_client.cache_clear()
    yield
    reset_settings_cache()
    notify.redis_client.cache_clear()
    notify.async_client.cache_clear()


def test_a_notice_carries_small_outputs_and_leaves_large_ones_to_the_database(on_redis):
    small, large, bare, failed = (str(uuid.uuid4()) for _ in range(4))
    notify.announce(small, "succeeded", outputs={"reply": "Hello Ada"})
    notify.announce(large, "succeeded", outputs={"reply": "x" * notify.NOTICE_MAX_BYTES})
    notify.announce(failed, "failed", error="KeyError: 'name'")
    notify.redis_client().rpush(notify.key(bare), "cancelled")  # what the reaper and older workers push

    async def collect() -> list:
        return [await notify.wait(run_id, 5) for run_id in (small, large, failed, bare)]

    got_small, got_large, got_failed, got_bare = asyncio.run(collect())
    assert got_small == {"state": "succeeded", "error": None, "outputs": {"reply": "Hello Ada"}}
    assert got_large == {"state": "succeeded", "error": None}           # too big: the caller reads the run
    assert got_failed == {"state": "failed", "error": "KeyError: 'name'"}
    assert got_bare == {"state": "cancelled"}


def test_no_notice_within_the_wait_is_none(on_redis):
    assert asyncio.run(notify.wait(str(uuid.uuid4()), 0.2)) is None
