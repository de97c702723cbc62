"""Batch jobs on SQLite and PostgreSQL, in process: sources and mapping, the item and job state machines,
the dispatch plan (concurrency cap, rate, recovery of lost and orphaned items), cancel, retry failed,
and the jobs page's handlers. Items execute through ``worker.batch.execute_item`` with sends captured."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from jobs import dispatch as job_dispatch
from jobs import lifecycle as jobs
from jobs.models import ItemState, JobItem, JobState
from jobs.sources import BadJobSource
from runs.attempts import MAX_ATTEMPTS, lease
from stackyard.errors import Conflict
from stackyard.settings import reset_settings_cache
from store.clock import utcnow
from store.db import session_scope
from worker import batch
from workflows import crud
from workflows.spec import spec_from_dict

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
FILES = "nodes.files.FileSource"
TXT = "haystack.components.converters.txt.TextFileToDocument"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """Messages that would go on the queue: (item id, countdown)."""
    queue: list[tuple[int, float]] = []
    monkeypatch.setattr(batch, "_send", lambda plan, item_id, countdown: queue.append((item_id, countdown)))
    return queue


@pytest.fixture
def greet(database) -> str:
    params = {"template": "Hi {{ name }}{{ tail }}", "required_variables": ["name"]}
    spec = spec_from_dict({"components": {"p": {"type": PROMPT, "init_parameters": params}},
                           "inputs": {"name": ["p.name"], "tail": ["p.tail"]}, "outputs": {"greeting": "p.prompt"}})
    with session_scope() as session:
        crud.create_workflow(session=session, name="greet", spec=spec)
    return "greet"


@pytest.fixture
def reader(database, data_dir) -> str:
    """files → text converter: an item fails when its file is missing."""
    nodes = {"files": {"type": FILES, "init_parameters": {}}, "txt": {"type": TXT, "init_parameters": {}}}
    spec = spec_from_dict({"components": nodes,
                           "connections": [{"sender": "files.sources", "receiver": "txt.sources"}],
                           "inputs": {"files": ["files.paths"]}, "outputs": {"documents": "txt.documents"}})
    with session_scope() as session:
        crud.create_workflow(session=session, name="reader", spec=spec)
    return "reader"


def csv_of(count: int, column: str = "name") -> str:
    return f"{column},ignored\n" + "".join(f"n{i},x\n" for i in range(count))


def new_job(workflow: str, source: dict, **kwargs) -> str:
    with session_scope() as session:
        return jobs.create_job(session=session, workflow_ref=workflow, source=source, **kwargs).id


def items_of(job_id: str) -> list[JobItem]:
    with session_scope() as session:
        return list(session.exec(select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.item_index)))


def job_of(job_id: str):
    with session_scope() as session:
        return jobs.get_job(session=session, job_id=job_id)


def drain(sent: list, worker: str = "w1") -> None:
    """Execute queued messages in order, as a worker would (each finish dispatches the next items)."""
    while sent:
        item_id, _ = sent.pop(0)
        batch.execute_item(item_id, worker=worker)


def test_csv_jsonl_and_single_sources_become_items(greet):
    job_id = new_job(greet, {"type": "csv", "data": csv_of(3)}, fixed={"tail": "!"})
    assert [i.inputs for i in items_of(job_id)] == [{"tail": "!", "name": f"n{i}"} for i in range(3)]
    assert job_of(job_id).source == {"type": "csv", "items": 3, "columns": ["name", "ignored"]}
    job_id = new_job(greet, {"type": "jsonl", "data": '{"who": "Ada", "n": 1}\n\n{"who": "Bob"}\n'}, mapping={"name": "who"})
    assert [i.inputs for i in items_of(job_id)] == [{"name": "Ada"}, {"name": "Bob"}]
    job_id = new_job(greet, {"type": "single", "inputs": {"name": "Cy"}})
    assert [(i.item_index, i.inputs) for i in items_of(job_id)] == [(0, {"name": "Cy"})]


@pytest.mark.parametrize("source, kwargs, field, message", [
    ({"type": "csv", "data": "who\nAda\n"}, {}, "mapping", "No input is fed by the source"),
    ({"type": "csv", "data": "name\nAda\n\n,\n"}, {"mapping": {"tail": "name"}}, "mapping.name", "input 'name' is required"),
    ({"type": "csv", "data": "name\nAda\n"}, {"mapping": {"nom": "name"}}, "mapping.nom", "does not declare"),
    ({"type": "csv", "data": "name\nAda\n"}, {"mapping": {"name": "who"}}, "mapping.name", "no such field"),
    ({"type": "jsonl", "data": '{"name": "Ada"}\n[1]\n'}, {}, "source.data", "line 2 is not a JSON object"),
    ({"type": "csv", "data": "name\n"}, {}, "source", "no items"),
    ({"type": "excel", "data": ""}, {}, "source", "source"),
])
def test_bad_sources_store_nothing(greet, source, kwargs, field, message):
    with pytest.raises(BadJobSource, match=message) as err, session_scope() as session:
        jobs.create_job(session=session, workflow_ref=greet, source=source, **kwargs)
    assert err.value.field.startswith(field)
    with session_scope() as session:
        assert session.exec(select(JobItem)).all() == []


def test_files_source_lists_files_under_the_root_once(reader, data_dir):
    folder = data_dir / "files" / "docs"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "c.md"):
        (folder / name).write_text(name)
    job_id = new_job(reader, {"type": "files", "paths": ["docs", "docs/*.txt"]})
    assert [i.inputs for i in items_of(job_id)] == [{"files": [f"docs/{name}"]} for name in ("a.txt", "b.txt", "c.md")]
    with pytest.raises(BadJobSource, match="outside the files root"), session_scope() as session:
        jobs.create_job(session=session, workflow_ref=reader, source={"type": "files", "paths": ["../etc"]})


def test_a_job_runs_to_the_end_with_at_most_concurrency_items_in_flight(greet, sent):
    job_id = new_job(greet, {"type": "csv", "data": csv_of(20)}, concurrency=3)
    batch.dispatch(job_id)
    assert len(sent) == 3 and job_of(job_id).state == JobState.RUNNING
    batch.dispatch(job_id)                    # no slot is free: nothing more is sent
    assert len(sent) == 3
    peak = 0
    while sent:
        with session_scope() as session:
            flying = session.exec(select(JobItem).where(JobItem.job_id == job_id, JobItem.state.in_(jobs.IN_FLIGHT))).all()
        peak = max(peak, len(flying))
        item_id, _ = sent.pop(0)
        assert batch.execute_item(item_id, worker="w1") == ItemState.SUCCEEDED
    assert peak == 3
    job = job_of(job_id)
    assert job.state == JobState.SUCCEEDED and job.finished_at is not None
    items = items_of(job_id)
    assert [i.outputs for i in items] == [{"greeting": f"Hi n{n}"} for n in range(20)]
    assert all(i.state == ItemState.SUCCEEDED and i.attempts == 1 and i.duration_ms >= 0 for i in items)
    with session_scope() as session:
        progress = jobs.progress(session=session, jobs=[job])[job_id]
    assert (progress.done, progress.failed, progress.total, progress.documents_written) == (20, 0, 20, None)


def test_a_duplicate_message_or_a_stale_owner_changes_nothing(greet, sent):
    job_id = new_job(greet, {"type": "single", "inputs": {"name": "Ada"}})
    batch.dispatch(job_id)
    item_id = sent[0][0]
    with session_scope() as session:
        claimed = job_dispatch.claim_item(session, item_id, "w1")
        assert claimed["attempts"] == 1
        assert job_dispatch.claim_item(session, item_id, "w2") is None                      # second delivery
        assert not job_dispatch.finish_and_plan(session, job_id, item_id, "w2", 1, ItemState.SUCCEEDED)[0]  # not the owner
        assert job_dispatch.finish_and_plan(session, job_id, item_id, "w1", 1, ItemState.SUCCEEDED,
                                            outputs={"greeting": "Hi Ada"})[0]
    assert batch.execute_item(item_id, worker="w3") is None                          # redelivered after it finished
    assert [(i.state, i.attempts, i.worker) for i in items_of(job_id)] == [(ItemState.SUCCEEDED, 1, "w1")]


def two_in_flight(workflow: str, sent: list, *, rows: int) -> tuple[str, tuple[int, int]]:
    """A CSV job of ``rows`` items at concurrency 2, dispatched: its id and the two items sent (``sent`` emptied)."""
    job_id = new_job(workflow, {"type": "csv", "data": csv_of(rows)}, concurrency=2)
    batch.dispatch(job_id)
    (first, _), (second, _) = sent
    sent.clear()
    return job_id, (first, second)


def test_items_of_a_dead_worker_and_lost_messages_are_recovered_from_the_database(greet, sent, monkeypatch):
    from stackyard.settings import get_settings

    monkeypatch.setattr(get_settings(), "job_redispatch_seconds", 5.0)
    job_id, (running, lost) = two_in_flight(greet, sent, rows=3)
    with session_scope() as session:
        job_dispatch.claim_item(session, running, "dead")
    assert batch.pump() and sent == []                      # a live lease and a fresh message: nothing to do
    later = utcnow() + timedelta(seconds=lease().seconds + 1)
    with session_scope() as session:
        plan = job_dispatch.plan_dispatch(session, job_id, now=later, recover=True)
    # The dead worker's item goes back to pending and is sent again first; the lost message is re-sent.
    assert sorted(i for i, _ in plan.send) == sorted([running, lost])
    by_id = {i.id: i for i in items_of(job_id)}
    assert by_id[running].state == ItemState.QUEUED and by_id[running].dispatches == 2
    assert by_id[lost].dispatches == 2
    # The dead worker wakes up: its result is dropped, the item is not done twice.
    with session_scope() as session:
        assert not job_dispatch.finish_and_plan(session, job_id, running, "dead", 1, ItemState.SUCCEEDED)[0]
    for item_id, _ in plan.send:
        batch.execute_item(item_id, worker="w2")
    drain(sent)
    items = items_of(job_id)
    assert [i.state for i in items] == [ItemState.SUCCEEDED] * 3
    assert by_id[running].item_index in [i.item_index for i in items if i.attempts == 2]
    assert job_of(job_id).state == JobState.SUCCEEDED


def test_an_item_that_keeps_killing_workers_fails(greet, sent):
    job_id = new_job(greet, {"type": "single", "inputs": {"name": "Ada"}})
    batch.dispatch(job_id)
    item_id = sent.pop()[0]
    now = utcnow()
    for attempt in range(MAX_ATTEMPTS):
        with session_scope() as session:
            assert job_dispatch.claim_item(session, item_id, f"w{attempt}")["attempts"] == attempt + 1
            now += timedelta(seconds=lease().seconds + 1)
            stale = now - timedelta(seconds=lease().seconds + 1)
            session.execute(JobItem.__table__.update().where(JobItem.__table__.c.id == item_id).values(heartbeat_at=stale))
            session.commit()
            job_dispatch.plan_dispatch(session, job_id, now=now, recover=True)
    item = items_of(job_id)[0]
    assert item.state == ItemState.FAILED and f"gave up after {MAX_ATTEMPTS} attempts" in item.error
    with session_scope() as session:
        job_dispatch.plan_dispatch(session, job_id, now=now)
    job = job_of(job_id)
    assert job.state == JobState.FAILED and job.error.startswith("1 of 1 items failed")


def test_rate_spaces_item_starts(greet, sent):
    job_id = new_job(greet, {"type": "csv", "data": csv_of(30)}, concurrency=30, rate_per_minute=60)
    started = time.monotonic()
    batch.dispatch(job_id)
    countdowns = [round(c) for _, c in sent]
    assert countdowns == list(range(int(job_dispatch.RATE_HORIZON_SECONDS) + 1))   # 1 s apart, 10 s ahead at most
    batch.dispatch(job_id)
    # The next slot is beyond the horizon: wait for the pump. Only a slot the clock has since brought within the
    # horizon may go (one per second elapsed: a loaded machine takes that long between the two calls).
    later = sent[len(countdowns):]
    assert len(later) <= int(time.monotonic() - started)
    assert all(countdown <= job_dispatch.RATE_HORIZON_SECONDS + 0.5 for _, countdown in later)


def test_concurrent_dispatches_never_exceed_the_cap(greet, sent):
    job_id = new_job(greet, {"type": "csv", "data": csv_of(50)}, concurrency=5)
    barrier = threading.Barrier(6)

    def plan() -> None:
        barrier.wait()
        batch.dispatch(job_id)

    threads = [threading.Thread(target=plan) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent) == 5 and len({i for i, _ in sent}) == 5


def test_cancel_stops_new_items_and_running_ones_finish(greet, sent):
    job_id = new_job(greet, {"type": "csv", "data": csv_of(10)}, concurrency=3)
    batch.dispatch(job_id)
    (first, _), (second, _), _ = sent
    batch.execute_item(first, worker="w1")            # done, and frees a slot that is filled
    with session_scope() as session:
        job_dispatch.claim_item(session, second, "w1")         # running when the cancel comes
        job = jobs.request_cancel(session=session, job_id=job_id)
        assert job.state == JobState.CANCELLED
        with pytest.raises(Conflict, match="already cancelled"):
            jobs.request_cancel(session=session, job_id=job_id)
        assert job_dispatch.finish_and_plan(session, job_id, second, "w1", 1, ItemState.SUCCEEDED,
                                            outputs={"greeting": "late"})[0]
    drain(sent)                                        # queued messages arrive: nothing runs
    states = [i.state for i in items_of(job_id)]
    assert states.count(ItemState.SUCCEEDED) == 2 and states.count(ItemState.CANCELLED) == 8
    assert batch.dispatch(job_id) is None and job_of(job_id).state == JobState.CANCELLED


def test_retry_reruns_only_the_failed_items(reader, data_dir, sent):
    folder = data_dir / "files"
    (folder / "here.txt").write_text("present")
    job_id = new_job(reader, {"type": "csv", "data": "files\nhere.txt\nlater1.txt\nlater2.txt\n"})
    with session_scope() as session:
        with pytest.raises(Conflict, match="once it has finished"):
            jobs.retry_failed(session=session, job_id=job_id)
    batch.dispatch(job_id)
    drain(sent)
    first = items_of(job_id)
    assert [i.state for i in first] == [ItemState.SUCCEEDED, ItemState.FAILED, ItemState.FAILED]
    assert "No file or folder 'later1.txt'" in first[1].error
    assert job_of(job_id).state == JobState.FAILED
    for name in ("later1.txt", "later2.txt"):
        (folder / name).write_text(name)
    with session_scope() as session:
        job, count = jobs.retry_failed(session=session, job_id=job_id)
    assert count == 2 and job.state == JobState.RUNNING and job.finished_at is None
    batch.dispatch(job_id)
    assert sorted(i for i, _ in sent) == [first[1].id, first[2].id]
    drain(sent)
    again = items_of(job_id)
    assert [i.state for i in again] == [ItemState.SUCCEEDED] * 3
    assert (again[0].finished_at, again[0].attempts) == (first[0].finished_at, 1)   # untouched
    assert again[1].outputs["documents"][0]["content"] == "later1.txt"
    assert job_of(job_id).state == JobState.SUCCEEDED
    with session_scope() as session, pytest.raises(Conflict, match="no failed items"):
        jobs.retry_failed(session=session, job_id=job_id)


def test_jobs_page_handlers(greet, sent):
    from ui import jobs_page

    status, table, job_id = jobs_page.create_job("greet", None, "one", jobs_page.SOURCES[2], None, "", '{"name": "Ada"}',
                                                 "", "", 2, None)
    assert status.startswith("✅") and table[0][0] == job_id and table[0][3] == "running"
    drain(sent)
    bar = jobs_page.progress_html(job_id)
    assert 'data-state="succeeded"' in bar and "1 done" in bar
    assert jobs_page.items_table(job_id) == [[0, "succeeded", '{"name": "Ada"}', '{"greeting": "Hi Ada"}', "", 1,
                                              jobs_page.items_table(job_id)[0][6]]]
    assert f"/api/v1/jobs/{job_id}/results?format=csv" in jobs_page.downloads(job_id)
    assert jobs_page.cancel_job(job_id).startswith("⚠️")
    status, _, _ = jobs_page.create_job("greet", None, "", jobs_page.SOURCES[2], None, "", "{bad", "", "", 2, None)
    assert "not valid JSON" in status
    status, _, _ = jobs_page.create_job("greet", None, "", jobs_page.SOURCES[0], None, "", "", "", "", 2, None)
    assert "Upload a CSV" in status


def test_transient_errors_retry_after_a_backoff_then_give_up(database, sent, monkeypatch):
    from tests.support.specs import REMOTE_LLM_ENV, remote_chat

    for name, value in {**REMOTE_LLM_ENV, "TEST_LLM_KEY": "unused"}.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    with session_scope() as session:   # nothing listens on port 9: every call is a connection error
        crud.create_workflow(session=session, name="remote", spec=spec_from_dict(remote_chat("http://127.0.0.1:9/v1")))
    job_id = new_job("remote", {"type": "single", "inputs": {"question": "hi"}})
    batch.dispatch(job_id)
    for attempt in range(1, MAX_ATTEMPTS):
        drain(sent)
        (item,) = items_of(job_id)
        assert item.state == ItemState.PENDING and f"attempt {attempt} hit a transient error" in item.error
        with session_scope() as session:   # not before its backoff has passed
            assert job_dispatch.plan_dispatch(session, job_id).send == []
            plan = job_dispatch.plan_dispatch(session, job_id, now=item.available_at + timedelta(seconds=0.1))
        sent.extend(plan.send)
    drain(sent)
    (item,) = items_of(job_id)
    assert item.state == ItemState.FAILED and item.error.startswith(f"gave up after {MAX_ATTEMPTS} attempts")
    assert job_of(job_id).state == JobState.FAILED


def test_a_transient_error_after_a_cancel_fails_the_item_instead_of_leaving_it_pending(database, sent, monkeypatch):
    from tests.support.specs import REMOTE_LLM_ENV, remote_chat

    for name, value in {**REMOTE_LLM_ENV, "TEST_LLM_KEY": "unused"}.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    with session_scope() as session:   # nothing listens on port 9: every call is a connection error
        crud.create_workflow(session=session, name="remote", spec=spec_from_dict(remote_chat("http://127.0.0.1:9/v1")))
    job_id = new_job("remote", {"type": "csv", "data": csv_of(3, column="question")}, concurrency=1)
    batch.dispatch(job_id)
    (item_id, _), = sent
    sent.clear()
    with session_scope() as session:
        jobs.request_cancel(session=session, job_id=job_id)   # the item's message is already on the queue...
        session.execute(JobItem.__table__.update().where(JobItem.__table__.c.id == item_id)
                        .values(state=ItemState.QUEUED))       # ...and it was taken just before the cancel
        session.commit()
    assert batch.execute_item(item_id, worker="w1") == ItemState.FAILED   # not back to pending: nothing would send it
    by_state = {i.item_index: (i.state, i.error) for i in items_of(job_id)}
    assert by_state[0][0] == ItemState.FAILED and by_state[0][1].startswith("not retried (the job was cancelled")
    assert [by_state[i][0] for i in (1, 2)] == [ItemState.CANCELLED] * 2 and sent == []
    assert job_of(job_id).state == JobState.CANCELLED


def test_items_whose_worker_died_after_a_cancel_do_not_stay_running(greet, sent):
    job_id, (dead, alive) = two_in_flight(greet, sent, rows=4)
    with session_scope() as session:
        job_dispatch.claim_item(session, dead, "dead")
        job_dispatch.claim_item(session, alive, "w1")
        jobs.request_cancel(session=session, job_id=job_id)
        assert job_dispatch.active_job_ids(session) == [job_id]     # cancelled, but items still run: pumped
        job_dispatch.renew_leases(session, [alive], "w1")
        later = utcnow() + timedelta(seconds=lease().seconds + 1)
        session.execute(JobItem.__table__.update().where(JobItem.__table__.c.id == alive).values(heartbeat_at=later))
        session.commit()
        assert job_dispatch.plan_dispatch(session, job_id, now=later, recover=True) is None
    states = {i.id: (i.state, i.error) for i in items_of(job_id)}
    assert states[dead] == (ItemState.FAILED, "its worker died after the job was cancelled; not retried")
    assert states[alive][0] == ItemState.RUNNING                         # its worker is alive: it finishes
    with session_scope() as session:
        assert job_dispatch.finish_and_plan(session, job_id, alive, "w1", 1, ItemState.SUCCEEDED)[0]
        assert job_dispatch.active_job_ids(session) == []
    assert sorted(s for s, _ in states.values() if s != ItemState.RUNNING) == sorted(
        [ItemState.FAILED, ItemState.CANCELLED, ItemState.CANCELLED])
    assert job_of(job_id).state == JobState.CANCELLED


def test_each_items_claim_end_and_next_dispatch_reuse_statements_built_once(greet, sent):
    from store import transitions

    job_id = new_job(greet, {"type": "csv", "data": csv_of(6)}, concurrency=2)
    batch.dispatch(job_id)
    for _ in range(2):                        # the first items build each statement once
        item_id, _ = sent.pop(0)
        assert batch.execute_item(item_id, worker="w1") == ItemState.SUCCEEDED
    before = transitions._prepared.cache_info()
    item_id, _ = sent.pop(0)
    assert batch.execute_item(item_id, worker="w2") == ItemState.SUCCEEDED
    after = transitions._prepared.cache_info()
    # claim, end and the next item's dispatch: three UPDATEs, each the same statement with this item's values
    assert (after.hits - before.hits, after.currsize) == (3, before.currsize)
    drain(sent, worker="w3")
    items = items_of(job_id)
    assert [(i.state, i.attempts, i.outputs) for i in items] == [
        (ItemState.SUCCEEDED, 1, {"greeting": f"Hi n{n}"}) for n in range(6)]
    assert [i.worker for i in items][2] == "w2" and job_of(job_id).state == JobState.SUCCEEDED
