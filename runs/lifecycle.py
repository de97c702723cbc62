"""Runs and their state machine. Every state change goes through :func:`transition`.

    queued ──► running ──► succeeded | failed | cancelled
      │           │ ▲
      │           ▼ │ (worker died: lease expired)
      └──────► retrying

``transition`` is a compare-and-set (``UPDATE … WHERE state IN allowed_from``), so two workers (or a
worker and the reaper) racing for one run cannot both win, and a redelivered message for a finished
run changes nothing. The database is the source of truth; the queue only carries run ids, and a run
whose message the broker lost is sent again from here (:func:`resend_lost`).

``heartbeat_at`` is the run's lease: renewed by its worker while it runs; while it waits (queued or
retrying), the time its message was last sent, or is due (the end of a retry backoff).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from runs import trace
from runs.attempts import MAX_ATTEMPTS, Ending, Verdict, died_each_time, exhausted, lease
from runs.models import NodeRun, Run, RunState
from stackyard.errors import Conflict, NotFound
from stackyard.settings import get_settings
from store.clock import as_utc, utcnow
from store.db import autocommit_scope, rerun_committed
from store.transitions import Sql, compare_and_set
from workflows import crud
from workflows.execute import check_known, check_required, required_inputs
from workflows.spec import WorkflowSpec

T = TypeVar("T")

TERMINAL_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})
ALLOWED: dict[RunState, frozenset[RunState]] = {
    RunState.RUNNING: frozenset({RunState.QUEUED, RunState.RETRYING, RunState.RUNNING}),
    RunState.RETRYING: frozenset({RunState.RUNNING, RunState.QUEUED}),
    RunState.SUCCEEDED: frozenset({RunState.RUNNING}),
    RunState.FAILED: frozenset({RunState.QUEUED, RunState.RUNNING, RunState.RETRYING}),
    RunState.CANCELLED: frozenset({RunState.QUEUED, RunState.RUNNING, RunState.RETRYING}),
    RunState.QUEUED: frozenset(),
}
WAITING = (RunState.QUEUED, RunState.RETRYING)
# A message sent longer ago than this is on its queue, or lost: a worker claims what it takes in milliseconds.
LOST_AFTER_SECONDS = 2.0
# On a queue holding fewer messages than runs waiting on it, which ones are missing is unknown: a run is sent
# again only after waiting this long, so a brief dip (a message between a worker's fetch and claim) costs nothing.
SHORT_QUEUE_RESEND_SECONDS = 30.0


# Conditions and values of the hot transitions, built once (see store.transitions).
OWNED_BY = Sql(col(Run.worker) == bindparam("owner"))              # params={"owner": worker}
FRESH = Sql((col(Run.cancel_requested).is_(False)) & (col(Run.attempts) < MAX_ATTEMPTS)
            & (col(Run.state) != RunState.RUNNING))                 # queued or retrying, not cancelled
NEXT_ATTEMPT = Sql(col(Run.attempts) + 1)
SENT_AT = func.coalesce(col(Run.heartbeat_at), col(Run.created_at))   # of a waiting run's message


def transition(session: Session, run_id: str, to: RunState, *, where: Any = None, params: dict[str, Any] | None = None,
               commit: bool = True, **fields: Any) -> Run | None:
    """Move a run to ``to`` if its current state allows it (and ``where`` holds, with ``params``).

    The only place that writes ``Run.state``. ``fields`` are written in the same UPDATE, which returns
    the updated row (None if the run did not move) in the same round trip.
    """
    return compare_and_set(session, Run, run_id, to, ALLOWED[to], terminal=to in TERMINAL_STATES, where=where,
                           params=params, commit=commit, **fields)


def get_run(session: Session, *, run_id: str) -> Run:
    run = session.get(Run, run_id, populate_existing=True)
    if run is None:
        raise NotFound(f"No run '{run_id}'; list runs with GET /api/v1/runs.")
    return run


def read_run(run_id: str) -> Run:
    """A run read in a session of its own, for callers that hold none (a streamed reply, a page)."""
    with autocommit_scope() as session:
        return get_run(session=session, run_id=run_id)


def node_runs(session: Session, *, run_id: str) -> list[NodeRun]:
    """The run's trace rows, without the whole tool results (``node_output`` reads one)."""
    query = select(NodeRun).where(NodeRun.run_id == run_id).order_by(NodeRun.id).options(defer(NodeRun.output_full))
    return list(session.exec(query))


def node_output(session: Session, *, run_id: str, row_id: int) -> str:
    """The whole result (JSON text) of an agent's tool call in the run's trace."""
    found = session.exec(select(NodeRun.output_full).where(NodeRun.run_id == run_id, NodeRun.id == row_id)).first()
    if found is None:
        raise NotFound(f"Run {run_id} has no trace row {row_id} with a whole result (only an agent's tool calls "
                       "keep one); see GET /api/v1/runs/{run_id} for its rows.")
    return found


def list_runs(session: Session, *, workflow_id: str | None = None, state: RunState | None = None, limit: int = 100) -> list[Run]:
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
    number: int = 0


def version_info(session: Session, version_id: str) -> VersionInfo:
    """The version's spec, required inputs and queue, read and checked once per process (LRU by id)."""
    with _versions_lock:
        if version_id in _versions:
            _versions.move_to_end(version_id)
            return _versions[version_id]
    from workflows.build import BuildMode
    from workflows.validation import build_pipeline

    row = crud.get_version_by_id(session=session, version_id=version_id)
    spec = crud.version_spec(row)
    info = VersionInfo(id=row.id, workflow_id=row.workflow_id, queue="gpu" if row.needs_gpu else "cpu", spec=spec,
                       required=required_inputs(spec, build_pipeline(spec, mode=BuildMode.VALIDATE)), number=row.number)
    with _versions_lock:
        _versions[version_id] = info
        while len(_versions) > VERSION_CACHE_SIZE:
            _versions.popitem(last=False)
    return info


def prepare_run(session: Session, *, workflow_ref: str | None, inputs: dict[str, Any], version: int | None = None,
                version_id: str | None = None, stream_node: str | None = None) -> Run:
    """A queued run, its inputs checked against its version, not written yet (:func:`create_run` writes it).

    The version is ``version_id`` when given (published apps pin one), else number ``version`` of the
    workflow, else its newest."""
    settings = get_settings()
    if version_id is None:
        version_id = crud.get_version_id(session=session, ref=workflow_ref, number=version)
    info = version_info(session, version_id)
    check_known(info.spec, inputs)
    check_required(info.required, inputs)
    return Run(workflow_id=info.workflow_id, version_id=info.id, inputs=inputs, queue=info.queue,
               stream_node=stream_node, soft_time_limit=settings.run_soft_time_limit,
               hard_time_limit=settings.run_hard_time_limit)


def create_run(session: Session, *, workflow_ref: str | None, inputs: dict[str, Any], version: int | None = None,
               version_id: str | None = None, stream_node: str | None = None,
               also: Callable[[Run], None] | None = None) -> Run:
    """Write a queued run after checking its inputs (:func:`prepare_run`); the caller enqueues its id after commit.

    ``also`` writes what must stand or fall with the run (a conversation's turn) in the same transaction; it is
    called again if the write is retried.
    """
    run = prepare_run(session, workflow_ref=workflow_ref, inputs=inputs, version=version, version_id=version_id,
                      stream_node=stream_node)
    ref = workflow_ref or run.workflow_id

    def write() -> Run:
        # Core, not session.add: the ORM's unit of work costs more than the INSERT on this hot path.
        session.execute(insert(Run.__table__).values(**run.model_dump()))
        if also is not None:
            also(run)
        session.commit()
        return run

    return write_run(session, write, ref)


def write_run(session: Session, write: Callable[[], T], ref: str) -> T:
    """Run ``write`` (it writes a run and commits): again when it lost a race; a 404 when the workflow was
    deleted meanwhile."""
    # A delete of the workflow racing it fails the insert (404) or deadlocks with its cascade (insert again).
    return rerun_committed(session, write, what=f"Starting a run of '{ref}'",
                           gone=f"Workflow '{ref}' was deleted while the run was being started; nothing was queued.")


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
    if exhausted(run.attempts):
        transition(session, run_id, RunState.FAILED, error=died_each_time(run.attempts))
        return None
    # Running with a fresh heartbeat means a live worker owns it (a duplicate delivery): leave it.
    stale = now - timedelta(seconds=lease().seconds)
    alive = (col(Run.state) != RunState.RUNNING) | (col(Run.heartbeat_at) < stale) | (col(Run.heartbeat_at).is_(None))
    taken = transition(session, run_id, RunState.RUNNING, where=alive & (col(Run.attempts) == run.attempts), **fields)
    if taken is not None and taken.attempts > 1:  # taken over from a dead worker before the reaper saw it
        _interrupted(session, run_id, taken.attempts - 1, "its worker stopped; a later attempt took the run over")
    return taken


def fail_unsent(session: Session, run_id: str, reason: str) -> Run | None:
    """A run the broker would not take: failed now, since no message would ever start it."""
    return transition(session, run_id, RunState.FAILED, error=f"could not be queued, the broker is unreachable ({reason})")


def heartbeat(session: Session, run_id: str, worker: str) -> bool:
    """Renew the lease; returns True when a cancel was requested."""
    session.execute(update(Run).where(col(Run.id) == run_id, col(Run.worker) == worker,
                                      col(Run.state) == RunState.RUNNING).values(heartbeat_at=utcnow()))
    session.commit()
    return cancel_requested(session, run_id)


def cancel_requested(session: Session, run_id: str) -> bool:
    return bool(session.exec(select(Run.cancel_requested).where(Run.id == run_id)).first())


ENDED = {Ending.SUCCEEDED: RunState.SUCCEEDED, Ending.FAILED: RunState.FAILED, Ending.CANCELLED: RunState.CANCELLED}


def end_attempt(session: Session, run_id: str, worker: str, verdict: Verdict, *,
                outputs: dict[str, Any] | None = None, model_loads: int = 0) -> Run | None:
    """Record how this worker's attempt ended (``runs.attempts.judge``): the run is retrying (the caller
    sends it again ``verdict.delay`` seconds later) or finished. Returns the moved run; None when this
    worker no longer owns it (taken over, or cancelled while it backed off)."""
    if verdict.ending is Ending.RETRY:
        return retry_later(session, run_id, worker, error=verdict.error or "", delay=verdict.delay)
    return finish(session, run_id, worker, ENDED[verdict.ending], outputs=outputs, error=verdict.error,
                  model_loads=model_loads)


def finish(session: Session, run_id: str, worker: str, to: RunState, *, outputs: dict[str, Any] | None = None,
           error: str | None = None, model_loads: int = 0) -> Run | None:
    """Record the end of an attempt this worker owns; returns the finished run (None: not its owner). Nodes
    an earlier attempt left running (its worker died mid-node) read ``interrupted`` from then on."""
    run = transition(session, run_id, to, where=OWNED_BY, params={"owner": worker}, outputs=outputs, error=error,
                     model_loads=model_loads)
    if run is not None and run.attempts > 1:  # first attempts, nearly every run, skip this statement
        _interrupted(session, run_id, run.attempts - 1, f"its worker stopped; the run {to.value} on a later attempt")
    return run


def retry_later(session: Session, run_id: str, worker: str, *, error: str, delay: float = 0.0) -> Run | None:
    """Give a run back after a transient error; the caller re-enqueues the returned run ``delay`` seconds
    later (None: this worker no longer owns it). Its message is not presumed lost before that delay ends."""
    return transition(session, run_id, RunState.RETRYING, where=OWNED_BY, params={"owner": worker}, error=error,
                      heartbeat_at=utcnow() + timedelta(seconds=delay))


def request_cancel(session: Session, *, run_id: str) -> Run:
    run = get_run(session=session, run_id=run_id)
    if run.state in TERMINAL_STATES:
        raise Conflict(f"Run {run_id} already {run.state.value}; only queued or running runs can be cancelled.")
    session.execute(update(Run).where(col(Run.id) == run_id).values(cancel_requested=True))
    session.commit()
    # Not started yet: cancel now. Running: the worker sees the flag and stops at the next node.
    transition(session, run_id, RunState.CANCELLED, where=col(Run.state) != RunState.RUNNING,
               error="cancelled before it started")
    return get_run(session=session, run_id=run_id)


def reap(session: Session, *, now: datetime | None = None, grace: float = 30.0) -> tuple[list[Run], list[Run]]:
    """Fail runs past their hard limit; put runs of dead workers back to retrying.

    Returns (runs to re-enqueue, runs failed), as the moves left them."""
    now = now or utcnow()
    requeue: list[Run] = []
    failed: list[Run] = []
    running = session.exec(select(Run).where(Run.state == RunState.RUNNING)).all()
    leased = timedelta(seconds=lease().seconds)
    for run in running:
        elapsed = now - as_utc(run.started_at or run.created_at)
        stale = run.heartbeat_at is None or now - as_utc(run.heartbeat_at) > leased
        limit = timedelta(seconds=run.hard_time_limit)
        same_attempt = col(Run.attempts) == run.attempts
        # Past the limit (plus grace for a live worker): the hard limit killed it or will; don't retry.
        if elapsed > limit + timedelta(seconds=grace) or (stale and elapsed >= limit):
            moved = transition(session, run.id, RunState.FAILED, where=same_attempt, commit=False,
                               error=f"exceeded the hard time limit of {run.hard_time_limit:g} s and was reaped")
            if moved is not None:
                _interrupted(session, run.id, run.attempts, "stopped at the run's hard time limit")
                failed.append(moved)
        elif stale and (moved := transition(session, run.id, RunState.RETRYING, where=same_attempt, commit=False,
                                            heartbeat_at=now)) is not None:  # the caller sends it now
            _interrupted(session, run.id, run.attempts, "its worker stopped (lease expired); the run was re-enqueued")
            requeue.append(moved)
        session.commit()
    return requeue, failed


def _interrupted(session: Session, run_id: str, attempt: int, why: str) -> None:
    """The run moved on without attempt ``attempt`` (and those before it): their nodes still marked running
    never end. Commits."""
    trace.interrupt(session, run_id, through_attempt=attempt, reason=f"interrupted: {why}")
    session.commit()


@dataclass(frozen=True)
class QueueDepths:
    """How many messages the broker held on each of the queues a reaper serves, and when it looked.

    ``broker`` names the broker's instance where it can tell (Redis's ``run_id``); ``restarted`` says it
    changed since the reaper's previous look: a restart or failover, after which the messages sent before
    it may be gone whatever the queues hold now (new work may already be on them)."""

    counts: Mapping[str, int]
    seen_at: datetime
    broker: str | None = None
    restarted: bool = False

    @property
    def lost_before(self) -> datetime:
        """A message sent before this, on a queue seen empty, whose run or item nobody claimed, is lost."""
        return self.seen_at - timedelta(seconds=LOST_AFTER_SECONDS)

    def held(self, queue: str) -> int:
        """Messages on ``queue`` that may be older than the look: none right after a restart."""
        return 0 if self.restarted else self.counts[queue]

    def empty(self, queue: str) -> bool:
        return queue in self.counts and self.held(queue) == 0

    def after(self, previous: QueueDepths | None) -> QueueDepths:
        """This look, marked restarted when the broker's instance differs from the one ``previous`` saw."""
        before = previous.broker if previous is not None else None
        return replace(self, restarted=before is not None and self.broker is not None and self.broker != before)


def resend_lost(session: Session, *, depths: QueueDepths, now: datetime | None = None) -> list[Run]:
    """Waiting runs whose message is gone, stamped as sent again (commits); the caller enqueues them.

    A broker can lose messages the database still counts on (Redis restarted without persistence, failed
    over or was flushed; an enqueue failed after the run was given back). Against what the broker held
    when it was asked (``depths``), a run queued or retrying whose message went out more than
    ``LOST_AFTER_SECONDS`` before is on its queue, or lost:

    - its queue is empty, or the broker restarted since the reaper's previous look: the message is lost;
      the run is sent again at once (a message that did survive the restart makes a harmless duplicate).
    - its queue holds fewer messages than runs waiting on it: at least the difference are lost; that many
      of the runs waiting longer than ``SHORT_QUEUE_RESEND_SECONDS`` are sent again, longest first. A
      slow queue that still holds every waiting run's message gets no duplicates.

    Each resend is a compare-and-set on the run's send time, so concurrent reapers send a run once; a
    duplicate message changes nothing anyway (:func:`claim`).
    """
    now = now or utcnow()
    waiting = (col(Run.state).in_(WAITING), SENT_AT < depths.lost_before)
    counts = session.exec(select(Run.queue, func.count()).where(*waiting, col(Run.queue).in_(list(depths.counts)))
                          .group_by(Run.queue)).all()
    table, resent = Run.__table__, []
    for queue, count in counts:
        held = depths.held(queue)
        if held == 0:
            sent_before, missing = depths.lost_before, None
        elif count > held:
            sent_before, missing = now - timedelta(seconds=SHORT_QUEUE_RESEND_SECONDS), count - held
        else:
            continue
        due = (col(Run.state).in_(WAITING), col(Run.queue) == queue, SENT_AT < sent_before)
        oldest = select(Run.id).where(*due).order_by(SENT_AT).limit(missing)
        rows = session.connection().execute(update(table).where(table.c.id.in_(oldest), *due).values(heartbeat_at=now)
                                            .returning(*table.c)).mappings().all()
        resent += [Run.model_validate(dict(row)) for row in rows]
    session.commit()
    return sorted(resent, key=lambda run: as_utc(run.created_at))
