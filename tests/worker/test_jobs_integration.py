"""Batch jobs on real processes: `stackyard web` + workers on Redis and PostgreSQL, ingesting into milvus-lite.

The broker is a Redis server of this module's own (same binary and flags as CI's, no persistence, on a
free port), so the Redis-restart test loses queued messages exactly as a restart of the shared Redis
would, without cutting other tests (or other people's runs) off their broker.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jobs import create_job, expected_documents, items, job, stored_ids, wait_job, write_corpus
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

FILES = "nodes.files.FileSource"
TXT = "haystack.components.converters.txt.TextFileToDocument"


class Workers:
    """The module's worker processes; a test may kill one and start another."""

    def __init__(self, stack: Stack) -> None:
        self.stack, self.count = stack, 0
        self.live: list[subprocess.Popen] = []

    def start(self, **kwargs) -> subprocess.Popen:
        self.count += 1
        proc = self.stack.start_worker(name=f"worker-{self.count}", **kwargs)
        self.live.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        self.stack.kill(proc, sig)
        self.live.remove(proc)


@pytest.fixture(scope="module")
def stack(private_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Stack]:
    with postgres_stack(tmp_path_factory.mktemp("jobs-stack"), broker_url=private_redis.url, extra_env={
            **model_paths_env({TINY: tiny_model}), "STACKYARD_JOB_REDISPATCH_SECONDS": "5"}) as stack:
        stack.first_worker = start_web_and_worker(stack, "worker-0")
        yield stack


@pytest.fixture(scope="module")
def workers(stack: Stack) -> Iterator[Workers]:
    pool = Workers(stack)
    pool.live.append(stack.first_worker)
    yield pool
    for proc in list(pool.live):
        pool.kill(proc)


def check_exactly_once(stack: Stack, job_id: str, folder: Path, collection: str) -> list[dict]:
    done = job(stack, job_id)
    assert done["state"] == "succeeded", done
    rows = items(stack, job_id)
    files = sorted(p.name for p in folder.iterdir())
    assert sorted(Path(r["inputs"]["files"][0]).name for r in rows) == files          # one result per file
    assert all(r["state"] == "succeeded" and r["documents_written"] >= 1 for r in rows)
    ids = stored_ids(stack, collection)
    assert len(ids) == len(set(ids)) == done["documents_written"] == expected_documents(folder)
    return rows


def test_a_200_row_csv_job_completes_with_200_result_rows(stack: Stack, workers: Workers):
    stack.create("greet-batch", greet())
    rows = "".join(f"person {i},{i}\n" for i in range(200))
    response = stack.api("POST", "/api/v1/jobs", files={"file": ("people.csv", f"name,n\n{rows}", "text/csv")},
                         data={"job": json.dumps({"workflow": "greet-batch", "concurrency": 8})})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["total"] == 200 and created["source"] == {"type": "csv", "items": 200, "columns": ["name", "n"]}
    done = wait_job(stack, created["id"], timeout=90)
    assert (done["state"], done["done"], done["failed"], done["total"]) == ("succeeded", 200, 0, 200)
    table = list(csv.DictReader(io.StringIO(stack.api("GET", f"/api/v1/jobs/{created['id']}/results").text)))
    assert [int(r["index"]) for r in table] == list(range(200))
    assert [r["greeting"] for r in table] == [f"Hello person {i}" for i in range(200)]
    assert {r["state"] for r in table} == {"succeeded"}
    lines = stack.api("GET", f"/api/v1/jobs/{created['id']}/results", params={"format": "jsonl"}).text.splitlines()
    assert len(lines) == 200 and json.loads(lines[7])["outputs"] == {"greeting": "Hello person 7"}
    assert stack.api("GET", "/jobs/").status_code == 200    # the jobs page is mounted


def test_a_folder_job_ingests_every_file_once(stack: Stack, workers: Workers):
    folder = stack.files_root / "folder"
    write_corpus(folder, files=10)
    stack.create("ingest-folder", ingest("folder_docs"))
    first = create_job(stack, workflow="ingest-folder", source={"type": "files", "paths": ["folder"]})
    assert first["total"] == 10
    wait_job(stack, first["id"])
    check_exactly_once(stack, first["id"], folder, "folder_docs")
    # The same folder again: documents are overwritten by content-hash id, none is added.
    again = create_job(stack, workflow="ingest-folder", source={"type": "files", "paths": ["folder/*.txt"]})
    wait_job(stack, again["id"])
    check_exactly_once(stack, again["id"], folder, "folder_docs")


def test_cancel_stops_new_items(stack: Stack, workers: Workers):
    stack.create("chat-batch", chat(TINY, tokens=150))
    rows = [{"question": f"q{i}"} for i in range(40)]
    created = create_job(stack, workflow="chat-batch", concurrency=1,
                         source={"type": "jsonl", "data": "\n".join(json.dumps(r) for r in rows)})
    wait_until(lambda: job(stack, created["id"])["done"] >= 3, timeout=60, message="three items done")
    response = stack.api("POST", f"/api/v1/jobs/{created['id']}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    cancelled_at = time.time()
    # The item running at the cancel finishes; whatever a bug would start after it shows up by then.
    wait_until(lambda: job(stack, created["id"])["running"] == 0, timeout=60, message="the running item to finish")
    rows = items(stack, created["id"])
    started = [r for r in rows if r["started_at"]]
    assert all(_epoch(r["started_at"]) < cancelled_at for r in started)       # nothing started after the cancel
    assert len(started) <= job(stack, created["id"])["done"] + 1 < 40
    assert {r["state"] for r in rows if not r["started_at"]} == {"cancelled"}
    assert stack.api("POST", f"/api/v1/jobs/{created['id']}/cancel").status_code == 409


def test_a_rate_limited_job_starts_no_item_before_its_slot_and_finishes_past_the_send_horizon(stack: Stack,
                                                                                              workers: Workers):
    # 30 items/min = a slot every 2 s; 9 items span 16 s, past the 10 s that are sent ahead with a countdown,
    # so the last ones are only sent later, by a finishing item's plan or the pump.
    from sqlalchemy import create_engine, text

    stack.create("greet-rated", greet())
    created = create_job(stack, workflow="greet-rated", concurrency=9, rate_per_minute=30,
                         source={"type": "csv", "data": "name\n" + "".join(f"r{i}\n" for i in range(9))})
    done = wait_job(stack, created["id"], timeout=90)
    assert (done["state"], done["done"], done["total"]) == ("succeeded", 9, 9)
    engine = create_engine(stack.database_url)   # the slots are the scheduler's own record, not in the API
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT dispatched_at, started_at FROM job_item WHERE job_id = :job "
                                 "ORDER BY item_index"), {"job": created["id"]}).all()
    engine.dispose()
    slots = [slot.timestamp() for slot, _ in rows]
    assert [round(b - a, 3) for a, b in zip(slots, slots[1:])] == [2.0] * 8
    early = [(index, round(slot - start.timestamp(), 3)) for index, (slot, start) in enumerate(rows) if start < slot]
    assert early == []                         # no item starts before its slot, those sent late included


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def test_retry_failed_reruns_only_the_failures(stack: Stack, workers: Workers):
    spec = {"components": {"files": {"type": FILES, "init_parameters": {}}, "txt": {"type": TXT, "init_parameters": {}}},
            "connections": [{"sender": "files.sources", "receiver": "txt.sources"}],
            "inputs": {"files": ["files.paths"]}, "outputs": {"documents": "txt.documents"}}
    stack.create("read-files", spec)
    folder = stack.files_root / "retry"
    folder.mkdir()
    names = [f"f{i}.txt" for i in range(10)]
    for name in names[:7]:
        (folder / name).write_text(name)
    created = create_job(stack, workflow="read-files", mapping={"files": "file"},
                         source={"type": "csv", "data": "file\n" + "".join(f"retry/{n}\n" for n in names)})
    first = wait_job(stack, created["id"])
    assert (first["state"], first["done"], first["failed"]) == ("failed", 7, 3)
    before = {r["index"]: r for r in items(stack, created["id"])}
    for name in names[7:]:
        (folder / name).write_text(name)
    response = stack.api("POST", f"/api/v1/jobs/{created['id']}/retry")
    assert response.status_code == 200 and response.json()["state"] == "running"
    done = wait_job(stack, created["id"])
    assert (done["state"], done["done"], done["failed"]) == ("succeeded", 10, 0)
    after = {r["index"]: r for r in items(stack, created["id"])}
    for index in range(7):       # untouched
        assert (after[index]["finished_at"], after[index]["attempts"]) == (before[index]["finished_at"], 1)
    for index in range(7, 10):   # rerun once
        assert before[index]["state"] == "failed" and after[index]["outputs"]["documents"][0]["content"] == names[index]
    assert stack.api("POST", f"/api/v1/jobs/{created['id']}/retry").status_code == 409


def test_sigkilled_worker_mid_job_loses_and_doubles_nothing(stack: Stack, workers: Workers):
    folder = stack.files_root / "crash"
    write_corpus(folder, files=20)
    stack.create("ingest-crash-job", ingest("crash_job_docs"))
    created = create_job(stack, workflow="ingest-crash-job", concurrency=3, source={"type": "files", "paths": ["crash"]})
    for _ in range(3):      # an item can end between the look and the kill: then the next one is caught
        wait_until(lambda: job(stack, created["id"])["done"] >= 5 and items(stack, created["id"], state="running"),
                   timeout=120, interval=0.05, message="five items done and one running")
        for proc in list(workers.live):
            workers.kill(proc)                   # the worker and its pool child, mid-item
        assert job(stack, created["id"])["state"] == "running"
        taken = {r["index"] for r in items(stack, created["id"], state="running")}   # dead: nobody ends them
        workers.start()
        if taken:
            break
    assert taken, "no item was running when the workers were killed, three times"
    wait_job(stack, created["id"], timeout=150)
    rows = check_exactly_once(stack, created["id"], folder, "crash_job_docs")
    assert all(r["attempts"] == 2 for r in rows if r["index"] in taken)   # taken back from the dead, run again


def test_redis_restart_mid_job_loses_and_doubles_nothing(stack: Stack, workers: Workers, private_redis: RedisServer):
    folder = stack.files_root / "restart"
    write_corpus(folder, files=20)
    stack.create("ingest-restart-job", ingest("restart_job_docs"))
    created = create_job(stack, workflow="ingest-restart-job", concurrency=4, source={"type": "files", "paths": ["restart"]})
    wait_until(lambda: job(stack, created["id"])["done"] >= 5, timeout=120, interval=0.05, message="five items done")
    private_redis.stop()                                # every queued message is gone with it
    time.sleep(1)
    private_redis.start()
    wait_job(stack, created["id"], timeout=150)
    rows = check_exactly_once(stack, created["id"], folder, "restart_job_docs")
    assert any(r["dispatches"] >= 2 for r in rows)  # items whose message vanished were sent again
