"""The dispatch plan of batch jobs, and what a worker does with one item.

A plan decides, under the job's row lock, which items go on the queue now: at most ``concurrency`` in
flight, started ``60 / rate_per_minute`` s apart, in index order. Workers plan after every item (in the
transaction that records its outcome); the pump plans with ``recover`` to take back items of dead workers
(lease expired) and re-send items whose message vanished: at once when the broker was seen holding
nothing on the job's queue (``depths``; the same rule as runs, ``runs.lifecycle.resend_lost``), else
after a backoff. The caller sends the ids after the commit; states change only through
``jobs.lifecycle.transition_items`` / ``transition_job``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, update
from sqlmodel import Session, col, select

from jobs.lifecycle import ACTIVE, IN_FLIGHT, has_items, transition_items, transition_job
from jobs.models import ItemState, Job, JobItem, JobState
from runs.attempts import Ending, Verdict, died_each_time, exhausted, lease
from runs.lifecycle import QueueDepths
from stackyard.settings import get_settings
from store.clock import as_utc, utcnow
from store.transitions import Sql

RATE_HORIZON_SECONDS = 10.0   # rate-limited items are sent at most this far ahead of their start (countdown)
MAX_RESEND_FACTOR = 16


# The statements run for every item are built once (``store.transitions.Sql``), their values bound per call:
# building and compiling them cost more than their round trips. No bind is named as a column: in an UPDATE,
# SQLAlchemy reserves those names for the values it sets.
_items = JobItem.__table__.c
_THE_ITEM = Sql(_items.id == bindparam("item"))
_OWNED = Sql(and_(_items.id == bindparam("item"), _items.worker == bindparam("owner"),
                  _items.attempts == bindparam("attempt")))
_PENDING = (select(_items.id).where(_items.job_id == bindparam("job"), _items.state == ItemState.PENDING,
                                    _items.available_at.is_(None) | (_items.available_at <= bindparam("now")))
            .order_by(_items.item_index).limit(bindparam("free")))      # the next ``free`` ready ones by index
_NEXT_PENDING = Sql(_items.id.in_(_PENDING))
_ATTEMPTS_PLUS_ONE, _DISPATCHES_PLUS_ONE = Sql(_items.attempts + 1), Sql(_items.dispatches + 1)
_IN_FLIGHT = select(func.count()).select_from(JobItem).where(_items.job_id == bindparam("job"),
                                                             _items.state.in_(IN_FLIGHT))


def claim_item(session: Session, item_id: int, worker: str) -> dict | None:
    """Take a queued item for execution; None if it is not queued any more (done, cancelled, taken). One
    statement: give it an autocommit session."""
    now = utcnow()
    rows = transition_items(session, ItemState.RUNNING, _THE_ITEM, params={"item": item_id}, commit=True,
                            worker=worker, attempts=_ATTEMPTS_PLUS_ONE, started_at=now, heartbeat_at=now,
                            returning=(_items.job_id, _items.item_index, _items.attempts, _items.inputs))
    return rows[0] if rows else None


def retry_item_later(session: Session, item_id: int, worker: str, attempt: int, *, error: str, delay: float) -> bool:
    """Give an item back to pending after a transient error, only while its job is still active: a cancelled
    job starts nothing again, so the caller records the failure instead. Returns whether it moved."""
    owned = (col(JobItem.id) == item_id, col(JobItem.worker) == worker, col(JobItem.attempts) == attempt,
             col(JobItem.job_id).in_(select(Job.id).where(col(Job.state).in_(ACTIVE))))
    return bool(transition_items(session, ItemState.PENDING, *owned, commit=True, error=error,
                                 available_at=utcnow() + timedelta(seconds=delay)))


ITEM_ENDED = {Ending.SUCCEEDED: ItemState.SUCCEEDED, Ending.FAILED: ItemState.FAILED}


def end_item_attempt(session: Session, job_id: str, item_id: int, worker: str, attempt: int, verdict: Verdict,
                     **fields: Any) -> tuple[ItemState | None, Dispatch | None]:
    """Record how this worker's attempt at an item ended (``runs.attempts.judge``); commits.

    A retry puts the item back to pending until its backoff ends (the caller plans the job again: the
    slot is free); a job cancelled meanwhile starts nothing again, so the failure is recorded instead. A
    final ending is written with the job's next dispatch in one transaction. Returns (the item's new
    state, None when this worker no longer owns it; the plan to deliver)."""
    if verdict.ending is Ending.RETRY:
        if retry_item_later(session, item_id, worker, attempt, error=verdict.error or "", delay=verdict.delay):
            return ItemState.PENDING, None
        verdict = verdict.not_retried("the job was cancelled or the item taken back")
    to = ITEM_ENDED[verdict.ending]
    moved, plan = finish_and_plan(session, job_id, item_id, worker, attempt, to, error=verdict.error, **fields)
    return (to if moved else None), plan


def renew_leases(session: Session, item_ids: list[int], worker: str) -> None:
    session.execute(update(JobItem).where(col(JobItem.id).in_(item_ids), col(JobItem.worker) == worker,
                                          col(JobItem.state) == ItemState.RUNNING).values(heartbeat_at=utcnow()))
    session.commit()


def job_version(session: Session, job_id: str) -> str:
    return session.exec(select(Job.version_id).where(Job.id == job_id)).one()


# ── the dispatch plan ───────────────────────────────────────────────────────────────────────────────


@dataclass
class Dispatch:
    """Items to put on the queue after the plan is committed: (item id, countdown seconds)."""

    job_id: str
    queue: str
    soft_time_limit: float
    hard_time_limit: float
    send: list[tuple[int, float]] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)     # of ``send``: items whose message was lost (or late)
    finished: JobState | None = None


def active_job_ids(session: Session) -> list[str]:
    """Jobs the pump visits: active ones, and cancelled ones with items still running (a worker may die)."""
    running = select(JobItem.job_id).where(JobItem.state == ItemState.RUNNING)
    cancelled_running = (col(Job.state) == JobState.CANCELLED) & col(Job.id).in_(running)
    return list(session.exec(select(Job.id).where(col(Job.state).in_(ACTIVE) | cancelled_running)))


def plan_dispatch(session: Session, job_id: str, *, now: datetime | None = None, recover: bool = False,
                  depths: QueueDepths | None = None) -> Dispatch | None:
    """Decide, under the job's row lock, which items to send now; commits. None if the job is not active.

    Fills free slots (``concurrency`` minus items queued or running) with pending items in index order,
    spaced ``60 / rate_per_minute`` s apart; finishes the job when nothing is left. With ``recover`` it
    first takes back running items whose lease expired (dead worker) and re-sends queued items nobody
    started in time (message lost): at once if ``depths`` saw the job's queue empty (see
    ``QueueDepths.lost_before``), else after ``STACKYARD_JOB_REDISPATCH_SECONDS``, doubling per resend."""
    now = now or utcnow()
    job = _lock_job(session, job_id, now, active_only=True)
    plan = None
    if job is not None:
        lost_before = depths.lost_before if depths is not None and depths.empty(job["queue"]) else None
        plan = _plan(session, job, now, recover=recover, lost_before=lost_before)
    if job is None and recover:
        _fail_orphans(session, job_id, now)
    session.commit()
    return plan


def _fail_orphans(session: Session, job_id: str, now: datetime) -> None:
    """Items of an ended (cancelled) job still running on a worker that died: nothing would ever finish
    them, and a cancelled job starts nothing again, so they fail (``retry`` can rerun them)."""
    stale = (col(JobItem.heartbeat_at).is_(None)) | (col(JobItem.heartbeat_at) < now - timedelta(seconds=lease().seconds))
    transition_items(session, ItemState.FAILED, col(JobItem.job_id) == job_id, col(JobItem.state) == ItemState.RUNNING,
                     stale, finished_at=now, error="its worker died after the job was cancelled; not retried")


def finish_and_plan(session: Session, job_id: str, item_id: int, worker: str, attempt: int, to: ItemState,
                    **fields: Any) -> tuple[bool, Dispatch | None]:
    """Record the outcome of an attempt this worker still owns (a reclaimed item's old owner writes nothing)
    and plan the job's next items, in one transaction; commits. Returns (recorded, plan or None)."""
    now = utcnow()
    job = _lock_job(session, job_id, now, active_only=False)  # job first: every multi-row writer locks it first
    moved = bool(transition_items(session, to, _OWNED, params={"item": item_id, "owner": worker,
                                                               "attempt": attempt}, finished_at=now, **fields))
    plan = _plan(session, job, now) if job is not None and job["state"] in ACTIVE else None
    session.commit()
    return moved, plan


def _lock_job(session: Session, job_id: str, now: datetime, *, active_only: bool) -> Any:
    # An UPDATE of the job row before anything else, so concurrent plans for one job run one after another
    # (PostgreSQL row lock; SQLite's write lock) and the concurrency cap holds. What follows runs in later
    # statements, which see every plan committed before the lock was granted.
    return session.connection().execute(_lock_statement(active_only), {"job": job_id, "now": now}).mappings().first()


@functools.cache
def _lock_statement(active_only: bool) -> Any:
    table = Job.__table__
    statement = update(table).where(table.c.id == bindparam("job")).values(pumped_at=bindparam("now"))
    if active_only:
        statement = statement.where(table.c.state.in_(ACTIVE))
    return statement.returning(*table.c)


def _plan(session: Session, job: Any, now: datetime, *, recover: bool = False,
          lost_before: datetime | None = None) -> Dispatch:
    job_id = job["id"]
    plan = Dispatch(job_id, job["queue"], job["soft_time_limit"], job["hard_time_limit"])
    connection = session.connection()
    if recover:
        flying = connection.execute(select(JobItem.id, JobItem.state, JobItem.attempts, JobItem.dispatches,
                                           JobItem.heartbeat_at, JobItem.dispatched_at).where(
            col(JobItem.job_id) == job_id, col(JobItem.state).in_(IN_FLIGHT))).all()
        in_flight = len(flying) - _recover(session, plan, flying, now, lost_before)
    else:
        in_flight = connection.execute(_IN_FLIGHT, {"job": job_id}).scalar_one()
    free = job["concurrency"] - in_flight
    if free > 0:
        _send_pending(session, plan, job, free, now)
        if plan.send and job["state"] == JobState.QUEUED:
            transition_job(session, job_id, JobState.RUNNING, commit=False, started_at=now)
    if in_flight == 0 and not plan.send and not has_items(session, job_id, ItemState.PENDING):
        plan.finished = _finish_job(session, job_id, job["total"])
    return plan


def _send_pending(session: Session, plan: Dispatch, job: Any, free: int, now: datetime) -> None:
    rate, pending = job["rate_per_minute"], {"job": job["id"], "now": now, "free": free}
    if not rate:  # one statement: the next pending items by index, moved to queued
        moved = transition_items(session, ItemState.QUEUED, _NEXT_PENDING, params=pending, dispatched_at=now,
                                 dispatches=_DISPATCHES_PLUS_ONE, returning=(_items.item_index,))
        plan.send += [(row["id"], 0.0) for row in sorted(moved, key=lambda r: r["item_index"])]
        return
    slot = max(now, as_utc(job["next_slot_at"]) if job["next_slot_at"] else now)
    for item_id in session.connection().execute(_PENDING, pending).scalars().all():
        if (slot - now).total_seconds() > RATE_HORIZON_SECONDS:
            break
        if transition_items(session, ItemState.QUEUED, _THE_ITEM, params={"item": item_id}, dispatched_at=slot,
                            dispatches=_DISPATCHES_PLUS_ONE):
            plan.send.append((item_id, (slot - now).total_seconds()))
            slot += timedelta(seconds=60.0 / rate)
    session.execute(update(Job).where(col(Job.id) == plan.job_id).values(next_slot_at=slot))


def _recover(session: Session, plan: Dispatch, flying: list, now: datetime, lost_before: datetime | None) -> int:
    """Take back stale in-flight items (queued ones sent before ``lost_before`` are lost); returns how many
    left the in-flight set."""
    stale_beat = now - timedelta(seconds=lease().seconds)
    resend_after = get_settings().job_redispatch_seconds
    left = 0
    for item_id, state, attempts, dispatches, heartbeat_at, dispatched_at in flying:
        if state == ItemState.RUNNING and (heartbeat_at is None or as_utc(heartbeat_at) < stale_beat):
            same = (col(JobItem.id) == item_id, col(JobItem.attempts) == attempts)
            if exhausted(attempts):
                moved = transition_items(session, ItemState.FAILED, *same, finished_at=now, error=died_each_time(attempts))
            else:
                moved = transition_items(session, ItemState.PENDING, *same,
                                         error=f"attempt {attempts}: its worker died; retrying")
            left += bool(moved)
        elif state == ItemState.QUEUED and dispatched_at is not None:
            # Rate-limited items are dispatched at their slot (a countdown message): never lost before it.
            lost = lost_before is not None and as_utc(dispatched_at) < lost_before
            wait = resend_after * min(2 ** max(dispatches - 1, 0), MAX_RESEND_FACTOR)
            if (lost or (now - as_utc(dispatched_at)).total_seconds() > wait) and transition_items(
                    session, ItemState.QUEUED, col(JobItem.id) == item_id, col(JobItem.dispatches) == dispatches,
                    dispatched_at=now, dispatches=dispatches + 1):
                plan.send.append((item_id, 0.0))
                plan.resent.append(item_id)
    return left


def _finish_job(session: Session, job_id: str, total: int) -> JobState | None:
    failed = session.exec(select(func.count()).where(JobItem.job_id == job_id, JobItem.state == ItemState.FAILED)).one()
    if failed:
        to = JobState.FAILED
        error = f"{failed} of {total} items failed; retry them with POST /api/v1/jobs/{job_id}/retry."
    elif has_items(session, job_id, ItemState.CANCELLED):
        to, error = JobState.CANCELLED, "cancelled by request"
    else:
        to, error = JobState.SUCCEEDED, None
    moved = transition_job(session, job_id, to, where=col(Job.state) == JobState.RUNNING, commit=False, error=error)
    return to if moved else None


def revert_unsent(session: Session, job_id: str, item_ids: list[int]) -> None:
    """Items whose message could not be sent (broker down) go back to pending for the next plan."""
    _lock_job(session, job_id, utcnow(), active_only=False)
    transition_items(session, ItemState.PENDING, col(JobItem.id).in_(item_ids), col(JobItem.state) == ItemState.QUEUED,
                     commit=True, dispatched_at=None)
