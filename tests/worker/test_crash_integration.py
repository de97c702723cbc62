"""Crash safety and a shared vector store, with real worker processes killed by SIGKILL."""

from __future__ import annotations

import signal

import pytest

from tests.support.specs import ingest
from tests.support.stack import Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CRASH_FILES = 16   # embedding them takes seconds (the test polls every 50 ms): the kill lands mid-node
SHARE_FILES = 12   # each run embeds for seconds, so the second is queued while the first holds a worker
WORDS = ("river stone lantern orchard copper meadow harbor thistle ember glacier "
         "falcon willow quarry saffron beacon tundra").split()


def write_corpus(folder, files: int, words: int = 260) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        text = " ".join(f"{WORDS[(index * 7 + n) % len(WORDS)]}{index}-{n % 50}" for n in range(words))
        (folder / f"doc{index:04d}.txt").write_text(text)


def stored_ids(stack: Stack, collection: str) -> list[str]:
    from nodes.stores import milvus_document_store
    from stackyard.settings import Settings

    settings = Settings(data_dir=stack.data_dir, milvus_lite_port=stack.milvus_port)
    return [doc.id for doc in milvus_document_store(collection, settings).filter_documents()]


def test_sigkilled_worker_mid_ingest_run_completes_once(stack: Stack):
    write_corpus(stack.files_root / "crash", files=CRASH_FILES)
    stack.create("ingest-crash", ingest("crash_docs"))
    first = stack.start_worker(name="worker-doomed")
    run = stack.start_run("ingest-crash", {"files": ["crash"]})
    wait_until(lambda: any(n["node"] == "embedder" and n["state"] == "running" for n in stack.run(run["id"])["node_runs"]),
               timeout=180, interval=0.05, message="embedder running")
    stack.kill(first, signal.SIGKILL)            # the worker and its pool child, mid-embedding
    assert stack.run(run["id"])["state"] == "running"
    second = stack.start_worker(name="worker-rescue")
    try:
        done = stack.wait_state(run["id"], {"succeeded", "failed", "cancelled"}, timeout=240)
        assert done["state"] == "succeeded", done["error"]
        assert done["attempts"] == 2
        written = done["outputs"]["documents_written"]
        ids = stored_ids(stack, "crash_docs")
        assert written == len(ids) == len(set(ids)) > CRASH_FILES
        # The attempts are both in the trace; the second one finished every node. The node the killed attempt
        # was in reads interrupted, not running: nothing would ever end it.
        attempts = {n["attempt"] for n in done["node_runs"]}
        assert attempts == {1, 2}
        assert all(n["state"] == "done" for n in done["node_runs"] if n["attempt"] == 2)
        first = {n["node"]: n for n in done["node_runs"] if n["attempt"] == 1}
        assert first["embedder"]["state"] == "interrupted" and "running" not in {n["state"] for n in first.values()}
        assert first["embedder"]["error"].startswith("interrupted: ")
        # Re-running the same ingest writes no duplicates.
        again = stack.start_run("ingest-crash", {"files": ["crash"]}, wait=240)
        assert again["state"] == "succeeded" and again["outputs"]["documents_written"] == written
        assert sorted(stored_ids(stack, "crash_docs")) == sorted(ids)
    finally:
        stack.discard(second)


def test_two_workers_share_one_vector_store(stack: Stack):
    for name in ("left", "right"):
        write_corpus(stack.files_root / name, files=SHARE_FILES)
        stack.create(f"ingest-{name}", ingest(f"{name}_docs"))
    workers = [stack.start_worker(name=f"worker-share-{i}") for i in (1, 2)]
    try:
        # The second run starts once a worker holds the first, so each worker takes one (prefetch 1).
        runs = [stack.start_run("ingest-left", {"files": ["left"]})]
        stack.wait_state(runs[0]["id"], {"running", "succeeded", "failed"}, timeout=120)
        runs.append(stack.start_run("ingest-right", {"files": ["right"]}))
        done = [stack.wait_state(r["id"], {"succeeded", "failed"}, timeout=240) for r in runs]
        assert [d["state"] for d in done] == ["succeeded", "succeeded"], [d["error"] for d in done]
        assert done[0]["worker"] != done[1]["worker"]
        for name, result in zip(("left", "right"), done):
            assert len(stored_ids(stack, f"{name}_docs")) == result["outputs"]["documents_written"] > SHARE_FILES
        for i in (1, 2):
            assert b"Open local milvus failed" not in (stack.root / f"worker-share-{i}.log").read_bytes()
    finally:
        for proc in workers:
            stack.discard(proc)
