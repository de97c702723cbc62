"""Queued work survives the loss of its messages: Redis SIGKILLed and restarted empty, on real processes.

Runs and job items are queued while no worker is up; Redis is killed with SIGKILL (no shutdown, nothing
saved) and restarted empty, so every queued message is gone and only the database knows the work. A
worker started afterwards must finish every run and item exactly once, within seconds: its reaper sees
the queues empty while the database holds work queued for longer than a couple of seconds, and re-sends
it. The Redis server is private to this module (see ``RedisServer`` in test_jobs_integration).
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.jobs import create_job, expected_documents, items, job, stored_ids, write_corpus
from tests.support.specs import chat, greet, ingest
from tests.support.stack import (
    TINY,
    RedisServer,
    Stack,
    model_paths_env,
    postgres_stack,
    start_web_and_worker,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUNS = 10
FILES = 12
CONCURRENCY = 4                 # the job's items queued (so lost) when Redis dies; the rest wait as pending
RESEND_LIMIT_SECONDS = 5.0      # from the worker ready to every lost message sent again
FINISHED = {"succeeded", "failed", "cancelled"}
STAMP = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/"
RUN_RESENT = re.compile(STAMP + r"stackyard\.reaper\] run ([0-9a-f]{32}) was waiting on queue .* sent again", re.MULTILINE)
ITEMS_RESENT = re.compile(STAMP + r"stackyard\.batch\] job \w+: items \[([\d, ]+)\] were queued but their message is gone",
                          re.MULTILINE)


@pytest.fixture(scope="module")
def stack(private_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Stack]:
    # The item pump's steady-state re-send stays at its default (30 s): recovery must not wait for it.
    with postgres_stack(tmp_path_factory.mktemp("loss-stack"), broker_url=private_redis.url,
                        extra_env=model_paths_env({TINY: tiny_model})) as stack:
        stack.first_worker = start_web_and_worker(stack, "worker-0")
        yield stack


def finished_log_lines(stack: Stack) -> dict[str, list[str]]:
    """Each run's 'run <id> <state> (attempt n …)' lines across every worker log: one per recorded outcome."""
    lines: dict[str, list[str]] = {}
    for log in stack.root.glob("worker-*.log"):
        for run_id, state in re.findall(r"run ([0-9a-f]{32}) (succeeded|failed|cancelled) \(attempt", log.read_text()):
            lines.setdefault(run_id, []).append(state)
    return lines


def epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, like the worker's log


def runs_resent(log: Path) -> list[tuple[str, float]]:
    """(run id, epoch seconds) each time the reaper sent a run again, from the worker's log."""
    return [(run_id, epoch(stamp)) for stamp, run_id in RUN_RESENT.findall(log.read_text())]


def items_first_resent(log: Path) -> dict[int, float]:
    """Item id → when it was first sent again (epoch seconds), from the worker's log."""
    first: dict[int, float] = {}
    for stamp, ids in ITEMS_RESENT.findall(log.read_text()):
        for item_id in ids.split(", "):
            first.setdefault(int(item_id), epoch(stamp))
    return first


def queued_item_ids(stack: Stack, job_id: str) -> list[int]:
    """Ids of the job's items queued now (the API pages items by index and does not show ids)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(stack.database_url)
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM job_item WHERE job_id = :job AND state = 'QUEUED'"),
                           {"job": job_id}).scalars().all()
    engine.dispose()
    return sorted(ids)


def start_waiting_caller(stack: Stack, workflow: str) -> tuple[threading.Thread, dict]:
    """A caller that starts a run with ``wait`` and blocks on it across the broker's loss."""
    answer: dict = {}

    def call() -> None:
        answer["run"] = stack.start_run(workflow, {"name": "waiter"}, wait=120)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    wait_until(lambda: stack.api("GET", "/api/v1/runs", params={"state": "queued"}).json(), timeout=30,
               message="the waiting caller's run to be queued")
    return thread, answer


def test_runs_and_items_queued_when_redis_dies_finish_exactly_once(stack: Stack, private_redis: RedisServer):
    folder = stack.files_root / "loss"
    write_corpus(folder, files=FILES)
    stack.create("greet-loss", greet())
    stack.create("ingest-loss", ingest("loss_docs"))
    stack.kill(stack.first_worker, signal.SIGTERM)           # nobody takes the messages: they stay on the queue

    waiter, answer = start_waiting_caller(stack, "greet-loss")
    run_ids = [stack.start_run("greet-loss", {"name": f"n{i}"})["id"] for i in range(RUNS)]
    created = create_job(stack, workflow="ingest-loss", concurrency=CONCURRENCY,
                         source={"type": "files", "paths": ["loss"]})
    assert {stack.run(run_id)["state"] for run_id in run_ids} == {"queued"}
    lost_items = queued_item_ids(stack, created["id"])
    assert len(lost_items) == CONCURRENCY
    assert stack.api("POST", "/api/v1/knowledge-bases", json={"name": "loss", "chunking": {"length": 20,
                                                                                            "overlap": 0}}).status_code == 201
    documents = stack.api("POST", "/api/v1/knowledge-bases/loss/documents", json={"texts": [
        {"name": f"note{i}", "text": f"Note {i} says the boat leaves at {i} o'clock."} for i in range(3)]}).json()
    assert [d["state"] for d in documents["added"]] == ["queued"] * 3

    private_redis.kill()                                            # every queued message is gone with it
    private_redis.start()
    back = time.monotonic()
    worker = stack.start_worker(name="worker-after")
    ready, ready_at = time.monotonic(), time.time()
    try:
        progress: dict[str, int] = {}

        def all_finished() -> bool:
            progress["runs"] = sum(stack.run(run_id)["state"] in FINISHED for run_id in run_ids)
            progress["items"] = (state := job(stack, created["id"]))["done"] + state["failed"]
            indexed = stack.api("GET", "/api/v1/knowledge-bases/loss/documents").json()
            progress["documents"] = sum(d["state"] in ("done", "error") for d in indexed)
            return progress["runs"] == RUNS and state["state"] in FINISHED and progress["documents"] == 3

        try:
            wait_until(all_finished, timeout=240, interval=0.2, message="all to finish")
        except AssertionError:
            raise AssertionError(f"{time.monotonic() - ready:.0f} s after a worker was ready, only {progress} of "
                                 f"{RUNS} runs and {FILES} items had finished") from None
        done = time.monotonic()
        waiter.join(timeout=60)
        runs_again = runs_resent(stack.root / "worker-after.log")
        items_again = items_first_resent(stack.root / "worker-after.log")
        resent = [*(stamp for _, stamp in runs_again), *(items_again.get(item_id, float("inf")) for item_id in lost_items)]
        print(f"\nrecovery: {done - back:.1f} s from Redis back empty to all {RUNS + 1} runs and {FILES} items "
              f"finished; the new worker took {ready - back:.1f} s to start, re-sent the {len(resent)} lost messages "
              f"{max(resent) - ready_at:.1f} s after it was ready, and finished the work {done - ready:.1f} s after")

        # One succeeded outcome per run: claimed once, one outcome recorded and logged.
        for run_id in run_ids:
            run = stack.run(run_id)
            assert (run["state"], run["attempts"]) == ("succeeded", 1), run
        assert answer["run"]["state"] == "succeeded"          # the caller waiting through it got its result
        outcomes = finished_log_lines(stack)
        assert all(outcomes.get(run_id) == ["succeeded"] for run_id in [*run_ids, answer["run"]["id"]]), outcomes
        # One result per item, no duplicate documents.
        rows = items(stack, created["id"])
        assert job(stack, created["id"])["state"] == "succeeded"
        assert sorted(Path(r["inputs"]["files"][0]).name for r in rows) == sorted(p.name for p in folder.iterdir())
        assert all(r["state"] == "succeeded" and r["attempts"] == 1 for r in rows)
        ids = stored_ids(stack, "loss_docs")
        assert len(ids) == len(set(ids)) == expected_documents(folder)
        # Every lost message was sent again within seconds, not after the item pump's 30 s backoff; runs once
        # (a queue that holds their messages gets no duplicates; a slow worker may see items sent again later).
        assert sorted(run_id for run_id, _ in runs_again) == sorted([*run_ids, answer["run"]["id"]])
        assert max(resent) - ready_at < RESEND_LIMIT_SECONDS
        # Knowledge-base documents queued then are indexed once, sent again by the same reaper.
        indexed = stack.api("GET", "/api/v1/knowledge-bases/loss/documents").json()
        assert [(d["state"], d["attempts"], d["chunk_count"]) for d in indexed] == [("done", 1, 1)] * 3
        log = (stack.root / "worker-after.log").read_text()
        assert all(f"document {d['id']} was queued for indexing, but the broker no longer holds" in log for d in indexed)
    finally:
        stack.discard(worker)


def test_a_live_worker_resends_what_was_queued_when_redis_restarted_though_new_work_got_there_first(
        stack: Stack, private_redis: RedisServer):
    """The restarted Redis is not empty for long: new runs land on it before the reaper's next look. Counting
    messages then says only that some are missing (resent after SHORT_QUEUE_RESEND_SECONDS, 30 s); the
    broker's new instance id says everything sent before it is gone."""
    stack.create("greet-live", greet())
    stack.create("chat-long", chat(TINY, tokens=1800, chain=8))
    worker = stack.start_worker(name="worker-live")
    try:
        long = stack.start_run("chat-long", {"question": "keep the worker busy"})
        stack.wait_state(long["id"], {"running"}, timeout=60)  # the worker's one slot is taken: the rest stay queued
        run_ids = [stack.start_run("greet-live", {"name": f"live{i}"})["id"] for i in range(RUNS)]
        assert {stack.run(run_id)["state"] for run_id in run_ids} == {"queued"}

        private_redis.kill()
        private_redis.start()
        back_at = time.time()
        newer = [stack.start_run("greet-live", {"name": f"new{i}"})["id"] for i in range(2)]
        resent = wait_until(lambda: set(run_ids) <= (found := dict(runs_resent(stack.root / "worker-live.log"))).keys()
                            and found, timeout=60, interval=0.2, message="the live worker to send the lost runs again")
        lost_resent = max(resent[run_id] for run_id in run_ids) - back_at
        print(f"\nlive worker: re-sent {RUNS} lost runs {lost_resent:.1f} s after Redis came back with new work on "
              "it (its consumer reconnects on its own schedule)")
        assert lost_resent < RESEND_LIMIT_SECONDS * 2  # one reaper pass, plus the reconnect
        run_ids += newer
        assert stack.api("POST", f"/api/v1/runs/{long['id']}/cancel").status_code == 200  # free the worker
        for run_id in run_ids:
            done = stack.wait_state(run_id, FINISHED, timeout=120)
            assert (done["state"], done["attempts"]) == ("succeeded", 1), done
        assert stack.wait_state(long["id"], FINISHED, timeout=60)["state"] == "cancelled"
    finally:
        stack.discard(worker)
