"""Batch jobs on workers: execute one item by id, dispatch a job's next items, pump every active job.

Only item ids cross the queue. A worker claims an item (compare-and-set), runs the version's warm
pipeline (the same process cache and ``run_pipeline`` as runs), writes outputs and state in one
transaction, then plans the job's next dispatch itself, so a job keeps ``concurrency`` items in flight
without waiting for a timer. :func:`pump` (every worker's reaper thread, and ``stackyard beat``) does the
rest from the database: starts jobs whose first dispatch was lost, sends rate-limited items when their
slot comes, takes back items of dead workers and re-sends items whose message vanished (Redis restart):
at once on a queue the broker holds nothing for (the reaper says which), else after a backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from evaluations.scoring import FinishedCase, scores_now, scoring_mode
from jobs import dispatch as job_dispatch
from jobs.models import ItemState
from runs import attempts
from runs.lifecycle import QueueDepths
from stackyard.errors import Conflict
from store.db import autocommit_scope, rerun_committed, session_scope
from worker import scoring
from worker.runner import cache, load_spec, worker_name
from workflows.execute import run_pipeline
from workflows.spec import WorkflowSpec, split_socket

log = logging.getLogger("stackyard.batch")
FLUSH_SECONDS = 30.0    # the longest a job's last case waits for this process's scorer before the job is scored
DISPATCH_ATTEMPTS = 3   # a deadlock victim planning again reads the winner's change (or finds the job gone)

_versions: dict[str, str] = {}      # job id → version id (a job's version never changes)


def execute_item(item_id: int, *, worker: str | None = None) -> ItemState | None:
    """Run one item if this worker can claim it; returns its new state (None if not claimed)."""
    worker = worker or worker_name()
    with autocommit_scope() as session:  # the claim is one compare-and-set statement
        item = job_dispatch.claim_item(session, item_id, worker)
        if item is None:
            log.info("job item %s not claimed (finished, cancelled or taken)", item_id)
            return None
        job_id = item["job_id"]
        if job_id not in _versions:
            if len(_versions) > 10_000:
                _versions.clear()
            _versions[job_id] = job_dispatch.job_version(session, job_id)
    version_id, attempt, scored = _versions[job_id], item["attempts"], _scoring_mode(job_id)
    _leases.hold(item_id, worker)
    started = time.perf_counter()
    verdict, fields = attempts.SUCCEEDED, {}
    try:
        spec, pipeline, _ = cache().get(version_id, lambda: load_spec(version_id))
        started = time.perf_counter()  # the item's own time, without a cold pipeline build
        outputs = run_pipeline(spec, pipeline, item["inputs"])
        fields = {"outputs": outputs, "documents_written": documents_written(spec, outputs),
                  "duration_ms": _since(started)}
        if scored == "now":           # an LLM judge: scored here, once, and written with the item
            fields["scores"] = _score_now(FinishedCase(job_id, item_id, item["item_index"], attempt, outputs))
    except Exception as exc:  # noqa: BLE001 - any failure inside the workflow is this item's failure
        verdict = attempts.judge(exc, attempt, time_limit=(SoftTimeLimitExceeded,), time_limit_error=(
            "exceeded the soft time limit (STACKYARD_RUN_SOFT_TIME_LIMIT); stopped"))
        log.warning("job %s item %s failed: %s", job_id, item["item_index"], verdict.error)
    finally:
        _leases.release(item_id)
    fields.setdefault("duration_ms", _since(started))
    try:
        with session_scope() as session:  # the outcome and the job's next items in one transaction
            state, plan = job_dispatch.end_item_attempt(session, job_id, item_id, worker, attempt, verdict, **fields)
    except Exception:  # noqa: BLE001 - the lease expires and the item runs again; its effects are idempotent
        log.exception("could not record job item %s; it will be taken back and run again", item_id)
        return None
    if state == ItemState.SUCCEEDED and scored == "batch":    # scored with others on this process's thread
        _case_scorer.add(FinishedCase(job_id, item_id, item["item_index"], attempt, fields["outputs"]))
    if state == ItemState.PENDING:
        dispatch(job_id)  # the freed slot goes to the next item; this one waits out its backoff as pending
    elif plan is not None:
        deliver(plan)
        if plan.finished is not None and scored is not None:
            _case_scorer.flush(FLUSH_SECONDS)   # this process's cases scored before the evaluation's scorer looks
            _score_if_evaluation()
    if state is None:
        log.warning("job item %s was taken back from this worker (lease expired); its result is dropped", item_id)
    return state


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _scoring_mode(job_id: str) -> str | None:
    try:
        return scoring_mode(job_id)
    except Exception:  # noqa: BLE001 - the case still runs; the evaluation's scorer scores it
        log.exception("job %s: could not tell whether it runs an evaluation; its scorer will score it", job_id)
        return None


def _score_now(case: FinishedCase) -> dict[str, Any] | None:
    """A judged evaluation's case scored here while the worker holds it; None when it cannot (the evaluation's
    scorer scores it then)."""
    try:
        return scores_now(case)
    except Exception:  # noqa: BLE001 - the case ran; its scores are the scorer's to make
        log.exception("job %s item %s: could not score the case; the evaluation's scorer will", case.job_id,
                      case.item_index)
        return None


def _score_if_evaluation() -> None:
    """The job just finished: an evaluation it ran is scored now, not at the reaper's next pass."""
    try:
        scoring.send_scoring()
    except Exception:  # noqa: BLE001 - the reaper sends it on its next pass
        log.exception("could not send an evaluation to be scored; the reaper will")


def documents_written(spec: WorkflowSpec, outputs: dict[str, Any]) -> int | None:
    """What an ingest item wrote: the sum of declared outputs fed by a writer's ``documents_written``."""
    counts = [outputs.get(alias) for alias, ref in spec.outputs.items() if split_socket(ref)[1] == "documents_written"]
    numbers = [value for value in counts if isinstance(value, int)]
    return sum(numbers) if numbers else None


def dispatch(job_id: str, *, recover: bool = False, depths: QueueDepths | None = None,
             send=None) -> job_dispatch.Dispatch | None:
    """Plan the job's next items (committed) and put their ids on the queue. Never raises on a broker or
    database outage: the pump tries again from the database."""
    try:
        with session_scope() as session:
            # A lost race (e.g. a deadlock with a delete of the job's workflow): plan again, reading the winner's change.
            plan = rerun_committed(session, lambda: job_dispatch.plan_dispatch(session, job_id, recover=recover,
                                                                                depths=depths),
                                   what=f"Dispatching job {job_id}", attempts=DISPATCH_ATTEMPTS)
    except Conflict as exc:  # lost every time: the pump plans it on its next pass
        log.warning("%s", exc)
        return None
    except Exception:  # noqa: BLE001 - the next pump retries
        log.exception("dispatch of job %s failed", job_id)
        return None
    if plan is not None:
        if plan.resent:
            log.warning("job %s: items %s were queued but their message is gone (or late); sent again", job_id,
                        plan.resent)
        deliver(plan, send=send)
    return plan


def deliver(plan: job_dispatch.Dispatch, *, send=None) -> None:
    """Send a committed plan's item ids; what cannot be sent goes back to pending for the next plan."""
    job_id = plan.job_id
    if not plan.send:
        return
    sent: list[int] = []
    try:
        for item_id, countdown in plan.send:
            (send or _send)(plan, item_id, countdown)
            sent.append(item_id)
    except Exception:  # noqa: BLE001 - broker down: give the rest back to pending
        unsent = [item_id for item_id, _ in plan.send if item_id not in sent]
        log.warning("could not send %d item(s) of job %s; they wait for the next pump", len(unsent), job_id,
                    exc_info=True)
        try:
            with session_scope() as session:
                job_dispatch.revert_unsent(session, job_id, unsent)
        except Exception:  # noqa: BLE001 - they stay queued; the resend timeout picks them up
            log.exception("could not revert unsent items of job %s", job_id)


def _send(plan: job_dispatch.Dispatch, item_id: int, countdown: float) -> None:
    from worker.app import ITEM_TASK, celery_app

    celery_app.send_task(ITEM_TASK, args=[item_id], queue=plan.queue, countdown=countdown or None,
                         soft_time_limit=plan.soft_time_limit, time_limit=plan.hard_time_limit)


def pump(*, depths: QueueDepths | None = None, send=None) -> list[job_dispatch.Dispatch]:
    """One pass over every active job: recover lost items, fill free slots, finish what is done.
    ``depths``: what the broker held when the reaper last asked (items on a queue seen empty are re-sent)."""
    try:
        with session_scope() as session:
            job_ids = job_dispatch.active_job_ids(session)
    except Exception:  # noqa: BLE001 - database away: next pass
        log.exception("job pump could not list jobs")
        return []
    plans = [dispatch(job_id, recover=True, depths=depths, send=send) for job_id in job_ids]
    return [plan for plan in plans if plan is not None]


class _Leases:
    """One thread per worker process renews the lease (heartbeat) of the items this process runs."""

    def __init__(self) -> None:
        self._held: dict[int, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, item_id: int, worker: str) -> None:
        with self._lock:
            self._held[item_id] = worker
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="stackyard-item-leases")
                self._thread.start()

    def release(self, item_id: int) -> None:
        with self._lock:
            self._held.pop(item_id, None)

    def _run(self) -> None:
        while True:
            time.sleep(attempts.lease().beat_seconds)
            with self._lock:
                held = dict(self._held)
            if not held:
                continue
            by_worker: dict[str, list[int]] = {}
            for item_id, worker in held.items():
                by_worker.setdefault(worker, []).append(item_id)
            try:
                with session_scope() as session:
                    for worker, ids in by_worker.items():
                        job_dispatch.renew_leases(session, ids, worker)
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease tolerates several
                log.exception("renewing item leases failed")


_leases = _Leases()
_case_scorer = scoring.CaseScorer()
