"""Runs and their state machine. Every state change goes through :func:`transition`.

    queued ──► running ──► succeeded | failed | cancelled
      │           │ ▲
      │           ▼ │ (worker died: lease expired)
      └──────► retrying

``transition`` is a compare-and-set (``UPDATE … WHERE state IN allowed_from``), so two workers (or a
worker and the reaper) racing for one run cannot both win, and a redelivered message for a finished
run changes nothing. The database is the source of truth; the queue only carries run ids.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, col, select

from stackyard.settings import get_settings
from workflows import crud
from workflows.errors import Conflict, NotFound, StackyardError
from workflows.execute import check_known, check_required, required_inputs
from workflows.models import NodeRun, Run, RunState, utcnow
from workflows.spec import WorkflowSpec
from workflows.transitions import Sql, compare_and_set

TERMINAL_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})
ALLOWED: dict[RunState, frozenset[RunState]] = {
    RunState.RUNNING: frozenset({RunState.QUEUED, RunState.RETRYING, RunState.RUNNING}),
    RunState.RETRYING: frozenset({RunState.RUNNING, RunState.QUEUED}),
    RunState.SUCCEEDED: frozenset({RunState.RUNNING}),
    RunState.FAILED: frozenset({RunState.QUEUED, RunState.RUNNING, RunState.RETRYING}),
    RunState.CANCELLED: frozenset({RunState.QUEUED, RunState.RUNNING, RunState.RETRYING}),
    RunState.QUEUED: frozenset(),
}
LEASE_SECONDS = 15.0     # a running run whose heartbeat is older than this belongs to a dead worker
MAX_ATTEMPTS = 3


# Conditions and values of the hot transitions, built once (see workflows.transitions).
OWNED_BY = Sql(col(Run.worker) == bindparam("owner"))              # params={"owner": worker}
FRESH = Sql((col(Run.cancel_requested).is_(False)) & (col(Run.attempts) < MAX_ATTEMPTS)
            & (col(Run.state) != RunState.RUNNING))                 # queued or retrying, not cancelled
NEXT_ATTEMPT = Sql(col(Run.attempts) + 1)


class IllegalTransition(StackyardError):
    status = 409


def transition(session: Session, run_id: str, to: RunState, *, where: Any = None, params: dict[str, Any] | None = None,
               commit: bool = True, **fields: Any) -> Run | None:
    """Move a run to ``to`` if its current state allows it (and ``where`` holds, with ``params``).

    The only place that writes ``Run.state``. ``fields`` are written in the same UPDATE, which returns
    the updated row (None if the run did not move) in the same round trip.
    """
    return compare_and_set(session, Run, run_id, to, ALLOWED[to], terminal=to in TERMINAL_STATES, where=where,
                           params=params, commit=commit, **fields)


def get_run(*, session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id, populate_existing=True)
    if run is None:
        raise NotFound(f"No run '{run_id}'; list runs with GET /api/v1/runs.")
    return run


def node_runs(*, session: Session, run_id: str) -> list[NodeRun]:
    return list(session.exec(select(NodeRun).where(NodeRun.run_id == run_id).order_by(NodeRun.id)))


def list_runs(*, session: Session, workflow_id: str | None = None, state: RunState | None = None, limit: int = 100) -> list[Run]:
    query = select(Run).order_by(col(Run.created_at).desc()).limit(limit)
    if workflow_id:
        query = query.where(Run.workflow_id == crud.get_workflow(session=session, ref=workflow_id).id)
    if state:
        query = query.where(Run.state == state)
    return list(session.exec(query))


VERSION_CACHE_SIZE = 256
_versions: OrderedDict[str, VersionInfo] = OrderedDict()
_versions_lock = threading.Lock()


@dataclass(frozen=True)
class VersionInfo:
    """What starting a run needs from a version; versions are immutable, so it is cached by id."""

    id: str
    workflow_id: str
    queue: str
    spec: WorkflowSpec
    required: list[str]


def version_info(session: Session, version_id: str) -> VersionInfo:
    """The version's spec, required inputs and queue, read and checked once per process (LRU by id)."""
    with _versions_lock:
        if version_id in _versions:
            _versions.move_to_end(version_id)
            return _versions[version_id]
    from workflows.build import BuildMode, build_pipeline

    row = crud.get_version_by_id(session=session, version_id=version_id)
    spec = crud.version_spec(row)
    info = VersionInfo(id=row.id, workflow_id=row.workflow_id, queue="gpu" if row.needs_gpu else "cpu", spec=spec,
                       required=required_inputs(spec, build_pipeline(spec, mode=BuildMode.VALIDATE)))
    with _versions_lock:
        _versions[version_id] = info
        while len(_versions) > VERSION_CACHE_SIZE:
            _versions.popitem(last=False)
    return info


def create_run(*, session: Session, workflow_ref: str | None, inputs: dict[str, Any], version: int | None = None,
               version_id: str | None = None, stream_node: str | None = None) -> Run:
    """Write a queued run after checking its inputs; the caller enqueues its id after commit.

    The version is ``version_id`` when given (published apps pin one), else number ``version`` of the
    workflow, else its newest.
    """
    settings = get_settings()
    if version_id is None:
        version_id = crud.get_version_id(session=session, ref=workflow_ref, number=version)
    info = version_info(session, version_id)
    check_known(info.spec, inputs)
    check_required(info.required, inputs)
    run = Run(workflow_id=info.workflow_id, version_id=info.id, inputs=inputs, queue=info.queue, stream_node=stream_node,
              soft_time_limit=settings.run_soft_time_limit, hard_time_limit=settings.run_hard_time_limit)
    # Core, not session.add: the ORM's unit of work costs more than the INSERT on this hot path.
    session.execute(insert(Run.__table__).values(**run.model_dump()))
    session.commit()
    return run


def claim(session: Session, run_id: str, worker: str) -> Run | None:
    """Take a run for execution, or None if it is finished, cancelled or alive on another worker."""
    now = utcnow()
    fields = {"worker": worker, "heartbeat_at": now, "started_at": now, "attempts": NEXT_ATTEMPT}
    # The usual case in one round trip: a queued (or retrying) run nobody has cancelled.
    claimed = transition(session, run_id, RunState.RUNNING, where=FRESH, **fields)
    if claimed is not None:
        return claimed
    run = session.get(Run, run_id, populate_existing=True)
    if run is None or run.state in TERMINAL_STATES:
        return None
    if run.cancel_requested:
        transition(session, run_id, RunState.CANCELLED, error="cancelled before it started")
        return None
    if run.attempts >= MAX_ATTEMPTS:
        transition(session, run_id, RunState.FAILED,
                   error=f"gave up after {run.attempts} attempts: the worker running it died each time")
        return None
    # Running with a fresh heartbeat means a live worker owns it (a duplicate delivery): leave it.
    stale = now - timedelta(seconds=LEASE_SECONDS)
    alive = (col(Run.state) != RunState.RUNNING) | (col(Run.heartbeat_at) < stale) | (col(Run.heartbeat_at).is_(None))
    return transition(session, run_id, RunState.RUNNING, where=alive & (col(Run.attempts) == run.attempts), **fields)


def heartbeat(session: Session, run_id: str, worker: str) -> bool:
    """Renew the lease; returns True when a cancel was requested."""
    session.execute(update(Run).where(col(Run.id) == run_id, col(Run.worker) == worker,
                                      col(Run.state) == RunState.RUNNING).values(heartbeat_at=utcnow()))
    session.commit()
    return cancel_requested(session, run_id)


def cancel_requested(session: Session, run_id: str) -> bool:
    return bool(session.exec(select(Run.cancel_requested).where(Run.id == run_id)).first())


def finish(session: Session, run_id: str, worker: str, to: RunState, *, outputs: dict[str, Any] | None = None,
           error: str | None = None, model_loads: int = 0) -> bool:
    """Record the end of an attempt this worker owns."""
    return transition(session, run_id, to, where=OWNED_BY, params={"owner": worker}, outputs=outputs, error=error,
                      model_loads=model_loads) is not None


def retry_later(session: Session, run_id: str, worker: str, *, error: str) -> Run | None:
    """Give a run back after a transient error; the caller re-enqueues the returned run with a delay
    (None: this worker no longer owns it)."""
    return transition(session, run_id, RunState.RETRYING, where=OWNED_BY, params={"owner": worker}, error=error)


def request_cancel(*, session: Session, run_id: str) -> Run:
    run = get_run(session=session, run_id=run_id)
    if run.state in TERMINAL_STATES:
        raise Conflict(f"Run {run_id} already {run.state.value}; only queued or running runs can be cancelled.")
    session.execute(update(Run).where(col(Run.id) == run_id).values(cancel_requested=True))
    session.commit()
    # Not started yet: cancel now. Running: the worker sees the flag and stops at the next node.
    transition(session, run_id, RunState.CANCELLED, where=col(Run.state) != RunState.RUNNING,
               error="cancelled before it started")
    return get_run(session=session, run_id=run_id)


def reap(session: Session, *, now: datetime | None = None, grace: float = 30.0) -> tuple[list[str], list[str]]:
    """Fail runs past their hard limit; put runs of dead workers back to retrying.

    Returns (ids to re-enqueue, ids failed)."""
    now = now or utcnow()
    requeue: list[str] = []
    failed: list[str] = []
    running = session.exec(select(Run).where(Run.state == RunState.RUNNING)).all()
    for run in running:
        elapsed = now - as_utc(run.started_at or run.created_at)
        stale = run.heartbeat_at is None or now - as_utc(run.heartbeat_at) > timedelta(seconds=LEASE_SECONDS)
        limit = timedelta(seconds=run.hard_time_limit)
        # Past the limit (plus grace for a live worker): the hard limit killed it or will; don't retry.
        if elapsed > limit + timedelta(seconds=grace) or (stale and elapsed >= limit):
            if transition(session, run.id, RunState.FAILED, where=col(Run.attempts) == run.attempts,
                          error=f"exceeded the hard time limit of {run.hard_time_limit:g} s and was reaped"):
                failed.append(run.id)
        elif stale and transition(session, run.id, RunState.RETRYING, where=col(Run.attempts) == run.attempts):
            requeue.append(run.id)
    return requeue, failed


def as_utc(value: datetime) -> datetime:
    from datetime import timezone

    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
