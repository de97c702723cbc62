"""apps.chat.follow: the one reader of a reply, for the OpenAI stream and the chat page (the Redis stream
path runs in tests/api/test_chat_integration.py and tests/ui/test_chat_page.py on both brokers)."""

from __future__ import annotations

import asyncio
import time

import pytest

from apps import chat
from runs.models import RunState
from tests.support.workflows import new_run, state_of
from worker.runner import execute


async def collect(run_id: str, **kwargs) -> list:
    return [item async for item in chat.follow(run_id, **kwargs)]


def test_a_finished_run_is_yielded_once_with_its_outputs(workflow):
    run_id = new_run(workflow)
    assert execute(run_id, worker="w") == RunState.SUCCEEDED
    [run] = asyncio.run(collect(run_id, timeout=5))
    assert (run.id, run.state, run.outputs) == (run_id, RunState.SUCCEEDED, {"greeting": "Hello Ada"})


def test_a_run_that_does_not_end_in_time_is_cancelled_and_the_reader_told_why(workflow):
    run_id = new_run(workflow)              # queued; no worker takes it
    started = time.monotonic()
    with pytest.raises(chat.ReplyTimedOut, match=f"Run {run_id} was still queued after 0.3 s and was cancelled"):
        asyncio.run(collect(run_id, timeout=0.3))
    assert 0.3 <= time.monotonic() - started < 5
    assert state_of(run_id).state == RunState.CANCELLED     # nobody waits for it any more: no worker spends time on it


def test_a_client_that_left_stops_the_reading(workflow):
    run_id = new_run(workflow)

    async def left() -> bool:
        return True

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(collect(run_id, timeout=30, left=left))
