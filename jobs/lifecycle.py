"""Batch jobs and their items: the two state machines, creation, cancel, retry failed items, progress.
Every state change goes through :func:`transition_job` or :func:`transition_items`, each a
compare-and-set ``UPDATE … WHERE state IN allowed_from``, like ``runs.lifecycle``. Which items go on
the queue, and what a worker does with one, is ``jobs.dispatch``.

    job:   queued ──► running ──► succeeded | failed | cancelled
                         ▲                      │          │
                         └──── retry failed ────┴──────────┘

    item:  pending ──► queued ──► running ──► succeeded | failed
             ▲ ▲          │ ▲ resend  │ lease expired,       │
             │ └──────────┘ └─────────┤ transient error      │
             │  send failed           ▼                      │
             ├─────────────────── pending ◄─ retry failed ───┘
           pending | queued ──► cancelled

Exactly once: item rows are written with the job (unique per job and index) and never added later; a
worker claims an item with a CAS and records its outcome with a CAS on (worker, attempt), so a
duplicate message, a zombie worker or a reaper race cannot run it twice *and* record it twice; effects
are idempotent (content-hash document ids, OVERWRITE). The queue only carries item ids; whatever it
loses, the dispatch plan (run by workers after each item and by the pump) finds again in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert
from sqlmodel import Session, col, select

from jobs.models import ItemState, Job, JobItem, JobState
from jobs.sources import item_inputs, read_source
from runs.lifecycle import version_info
from stackyard.errors import Conflict, NotFound
from stackyard.settings import get_settings
from store.clock import as_utc, utcnow
from store.db import race_safe
from store.transitions import compare_and_set, compare_and_set_rows
from workflows import crud

JOB_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
JOB_ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.RUNNING: frozenset({JobState.QUEUED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset({JobState.RUNNING}),
    JobState.FAILED: frozenset({JobState.RUNNING}),
    JobState.CANCELLED: frozenset({JobState.QUEUED, JobState.RUNNING}),
    JobState.QUEUED: frozenset(),
}
ITEM_TERMINAL = frozenset({ItemState.SUCCEEDED, ItemState.FAILED, ItemState.CANCELLED})
IN_FLIGHT = (ItemState.QUEUED, ItemState.RUNNING)
ACTIVE = (JobState.QUEUED, JobState.RUNNING)
ITEM_ALLOWED: dict[ItemState, frozenset[ItemState]] = {
    ItemState.QUEUED: frozenset({ItemState.PENDING, ItemState.QUEUED}),   # queued → queued: sent again
    ItemState.RUNNING: frozenset({ItemState.QUEUED}),
    ItemState.SUCCEEDED: frozenset({ItemState.RUNNING}),
    ItemState.FAILED: frozenset({ItemState.RUNNING}),
    ItemState.PENDING: frozenset({ItemState.QUEUED, ItemState.RUNNING, ItemState.FAILED}),
    ItemState.CANCELLED: frozenset({ItemState.PENDING, ItemState.QUEUED}),
}


def transition_job(session: Session, job_id: str, to: JobState, *, where: Any = None, commit: bool = True,
                   **fields: Any) -> Job | None:
    """Move a job to ``to`` if its state allows it (and ``where`` holds); the only writer of ``Job.state``."""
    return compare_and_set(session, Job, job_id, to, JOB_ALLOWED[to], terminal=to in JOB_TERMINAL, where=where,
                           commit=commit, **fields)


def transition_items(session: Session, to: ItemState, *where: Any, params: dict[str, Any] | None = None,
                     commit: bool = False, returning: tuple = (), **fields: Any) -> list[dict]:
    """Move the items matching ``where`` whose state allows it to ``to``; the only writer of ``JobItem.state``.
    ``where`` is conditions, or one prepared ``Sql`` fragment with its ``params`` (``compare_and_set_rows``).

    Returns the moved rows: their ids and the ``returning`` columns."""
    return compare_and_set_rows(session, JobItem, to, ITEM_ALLOWED[to], *where, params=params, returning=returning,
                                commit=commit, **fields)


# ── creating and reading jobs ───────────────────────────────────────────────────────────────────────


def create_job(session: Session, *, source: dict[str, Any] | Any, workflow_ref: str | None = None,
               version: int | None = None, version_id: str | None = None, mapping: dict[str, str] | None = None,
               fixed: dict[str, Any] | None = None, concurrency: int | None = None,
               rate_per_minute: float | None = None, name: str = "", schedule_id: str | None = None,
               commit: bool = True) -> Job:
    """Write a queued job and all its items (checked against the workflow first); dispatch it after commit."""
    settings = get_settings()
    info = version_info(session, version_id or crud.get_version_id(session=session, ref=workflow_ref, number=version))
    records = read_source(source)
    inputs = item_inputs(info.spec, records, mapping=mapping or {}, fixed=fixed or {}, required=info.required)
    job = Job(name=name, workflow_id=info.workflow_id, version_id=info.id, queue=info.queue,
              source=records.summary, mapping=mapping or {}, fixed=fixed or {}, total=len(inputs),
              concurrency=concurrency or settings.job_default_concurrency, rate_per_minute=rate_per_minute,
              schedule_id=schedule_id, soft_time_limit=settings.run_soft_time_limit,
              hard_time_limit=settings.run_hard_time_limit)

    def write() -> Job:
        session.add(job)
        session.flush()
        for start in range(0, len(inputs), 1000):
            session.execute(insert(JobItem), [{"job_id": job.id, "item_index": start + offset, "inputs": values,
                                               "state": ItemState.PENDING, "attempts": 0, "dispatches": 0}
                                              for offset, values in enumerate(inputs[start:start + 1000])])
        return job

    workflow = workflow_ref or info.workflow_id
    # The source is not read again: a version deleted meanwhile is answered at once.
    race_safe(session, write, what=f"Creating a job of workflow '{workflow}'",
              gone=f"Workflow '{workflow}' was deleted while the job was being created; nothing was stored.")
    if commit:
        session.commit()
    return job


def get_job(session: Session, *, job_id: str) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"No job '{job_id}'; list jobs with GET /api/v1/jobs.")
    return job


def list_jobs(session: Session, *, workflow_id: str | None = None, state: JobState | None = None,
              schedule_id: str | None = None, limit: int = 100) -> list[Job]:
    query = select(Job).order_by(col(Job.created_at).desc()).limit(limit)
    if workflow_id:
        query = query.where(Job.workflow_id == crud.get_workflow(session=session, ref=workflow_id).id)
    if state:
        query = query.where(Job.state == state)
    if schedule_id:
        query = query.where(Job.schedule_id == schedule_id)
    return list(session.exec(query))


@dataclass
class Progress:
    total: int
    counts: dict[str, int]
    documents_written: int | None
    eta_seconds: float | None

    @property
    def done(self) -> int:
        return self.counts.get("succeeded", 0)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)


def progress(session: Session, *, jobs: list[Job], now: datetime | None = None) -> dict[str, Progress]:
    """Item counts per state, documents written and an ETA for each job (one query for all of them)."""
    now = now or utcnow()
    ids = [job.id for job in jobs]
    counts: dict[str, dict[str, int]] = {job_id: {s.value: 0 for s in ItemState} for job_id in ids}
    written: dict[str, int | None] = dict.fromkeys(ids)
    if ids:
        query = (select(JobItem.job_id, JobItem.state, func.count(), func.sum(JobItem.documents_written))
                 .where(col(JobItem.job_id).in_(ids)).group_by(JobItem.job_id, JobItem.state))
        for job_id, state, count, docs in session.exec(query):
            counts[job_id][ItemState(state).value] = count
            if docs is not None:
                written[job_id] = (written[job_id] or 0) + int(docs)
    result = {}
    for job in jobs:
        by_state = counts[job.id]
        finished = sum(by_state[s.value] for s in ITEM_TERMINAL)
        eta = None
        if job.state == JobState.RUNNING and job.started_at and finished:
            elapsed = (now - as_utc(job.started_at)).total_seconds()
            eta = round(elapsed / finished * (job.total - finished), 1)
        result[job.id] = Progress(total=job.total, counts=by_state, documents_written=written[job.id], eta_seconds=eta)
    return result


def list_items(session: Session, *, job_id: str, state: ItemState | None = None, after: int = -1,
               limit: int = 100) -> list[JobItem]:
    """Items in index order after index ``after`` (keyset paging: pass the last index seen)."""
    query = (select(JobItem).where(JobItem.job_id == job_id, JobItem.item_index > after)
             .order_by(JobItem.item_index).limit(limit))
    if state:
        query = query.where(JobItem.state == state)
    return list(session.exec(query))


# ── user actions ────────────────────────────────────────────────────────────────────────────────────


def request_cancel(session: Session, *, job_id: str) -> Job:
    """Stop starting items: the job is cancelled and its pending and queued items with it at once; items
    already running finish and keep their results."""
    def cancel() -> None:
        job = get_job(session=session, job_id=job_id)
        if job.state in JOB_TERMINAL:
            raise Conflict(f"Job {job_id} already {job.state.value}; only queued or running jobs can be cancelled.")
        if transition_job(session, job_id, JobState.CANCELLED, commit=False, error="cancelled by request"):
            transition_items(session, ItemState.CANCELLED, col(JobItem.job_id) == job_id,
                             error="cancelled before it started")

    race_safe(session, cancel, what=f"Cancelling job {job_id}")   # locks job then items: may deadlock a worker
    session.commit()
    return get_job(session=session, job_id=job_id)


def retry_failed(session: Session, *, job_id: str) -> tuple[Job, int]:
    """Put a finished job's failed items back to pending (others are left alone); returns (job, how many)."""
    def retry() -> int:
        job = get_job(session=session, job_id=job_id)
        if job.state not in JOB_TERMINAL:
            raise Conflict(f"Job {job_id} is {job.state.value}; retry its failed items once it has finished "
                           "(or cancel it).")
        if not has_items(session, job_id, ItemState.FAILED):
            raise Conflict(f"Job {job_id} has no failed items to retry.")
        if not transition_job(session, job_id, JobState.RUNNING, where=col(Job.state) == job.state, commit=False,
                              finished_at=None, error=None):
            raise Conflict(f"Job {job_id} changed state meanwhile; look at it again.")
        failed = (col(JobItem.job_id) == job_id, col(JobItem.state) == ItemState.FAILED)
        return len(transition_items(session, ItemState.PENDING, *failed, error=None, outputs=None, scores=None,
                                    attempts=0, worker=None, available_at=None, started_at=None, finished_at=None,
                                    duration_ms=None, documents_written=None))

    moved = race_safe(session, retry, what=f"Retrying the failed items of job {job_id}")
    session.commit()
    return get_job(session=session, job_id=job_id), moved


_ANY_ITEM = (select(JobItem.id).where(JobItem.job_id == bindparam("job"), JobItem.state == bindparam("in_state"))
             .limit(1))   # built once: asked after every item of a job near its end


def has_items(session: Session, job_id: str, state: ItemState) -> bool:
    return session.connection().execute(_ANY_ITEM, {"job": job_id, "in_state": state}).first() is not None
