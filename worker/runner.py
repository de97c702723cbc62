"""Execute one run by id: claim it, run its version's warm pipeline, record the outcome.

This is the plain function behind the Celery task; tests call it directly too. Only the run id
arrives; everything else is loaded from the database, which stays the source of truth.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from nodes.errors import NodeLoadError
from runs import attempts
from runs import lifecycle as runs
from runs.models import RunState
from runs.trace import Recording, RunCancelled, recording
from stackyard.redact import redact
from stackyard.settings import get_settings
from store.db import autocommit_scope
from worker import notify
from worker.cache import WarmPipelines
from worker.streams import TokenStream, special_tokens
from workflows import crud
from workflows.agents import streams_while_calling_tools
from workflows.availability import knowledge_warnings
from workflows.execute import run_pipeline

log = logging.getLogger("stackyard.worker")
TRACE_FLUSH_SECONDS = 0.1
CANCEL_CHECK_SECONDS = 0.5
CANCEL_GRACE_SECONDS = 2.0
TIME_LIMIT_GRACE_SECONDS = 2.0

_cache: WarmPipelines | None = None


def cache() -> WarmPipelines:
    global _cache
    if _cache is None or _cache.size != get_settings().pipeline_cache_size:
        _cache = WarmPipelines(get_settings().pipeline_cache_size)
    return _cache


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Heartbeat(threading.Thread):
    """While the pipeline runs: writes the trace every 100 ms, renews the lease and watches for a cancel."""

    def __init__(self, run_id: str, worker: str, rec: Recording, interrupt: bool,
                 soft_limit: float | None = None) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.run_id, self.worker, self.rec, self.interrupt = run_id, worker, rec, interrupt
        self.done = threading.Event()
        # Past the soft limit Celery raises in the task; code that catches every exception (a library's retry loop)
        # can swallow that, so the run would go on to the hard limit. Past the limit and a grace, the heartbeat
        # interrupts the main thread itself, again every grace, until the run ends.
        self.over_at = time.monotonic() + soft_limit + TIME_LIMIT_GRACE_SECONDS if soft_limit else None

    def run(self) -> None:
        cancel_seen: float | None = None
        # The claim has just stamped the lease and seen no cancel: the first tick of a short run only flushes.
        beat_every = attempts.lease().beat_seconds
        next_beat, next_check = time.monotonic() + beat_every, time.monotonic() + CANCEL_CHECK_SECONDS
        while not self.done.wait(TRACE_FLUSH_SECONDS):
            try:
                with autocommit_scope() as session:  # each write stands alone: no BEGIN/COMMIT round trips
                    try:
                        self.rec.flush(session)
                    except Exception:  # noqa: BLE001 - rows stay due; the lease and the cancel check go on
                        log.exception("trace flush failed for run %s; retried next beat", self.run_id)
                    now = time.monotonic()
                    if now < next_check and cancel_seen is None:
                        continue
                    next_check = now + CANCEL_CHECK_SECONDS
                    if now >= next_beat:
                        next_beat = now + beat_every
                        cancelled = runs.heartbeat(session, self.run_id, self.worker)
                    else:
                        cancelled = runs.cancel_requested(session, self.run_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease tolerates several
                log.exception("heartbeat failed for run %s", self.run_id)
                continue
            if self.interrupt and self.over_at is not None and time.monotonic() > self.over_at:
                self.over_at = time.monotonic() + TIME_LIMIT_GRACE_SECONDS
                _over_time.set()
                os.kill(os.getpid(), signal.SIGUSR2)
            if cancelled and cancel_seen is None:
                cancel_seen = time.monotonic()
                self.rec.cancelled.set()
            elif cancel_seen and self.interrupt and time.monotonic() - cancel_seen > CANCEL_GRACE_SECONDS:
                # The current node is not yielding (e.g. a long generation): interrupt the main thread.
                os.kill(os.getpid(), signal.SIGUSR2)
                cancel_seen = float("inf")


_interruptible = threading.Event()
_over_time = threading.Event()      # the heartbeat's interrupt is for the soft time limit, not a cancel


def _raise_cancelled(signum: int, frame: Any) -> None:
    # Only while the pipeline runs: a late signal must not break the code that records the outcome.
    if _interruptible.is_set():
        if _over_time.is_set():
            _over_time.clear()
            raise SoftTimeLimitExceeded()       # stays interruptible: a swallowed one is raised again
        _interruptible.clear()
        raise RunCancelled("cancelled by request")


def load_spec(version_id: str):
    with autocommit_scope() as session:
        return crud.version_spec(crud.get_version_by_id(session=session, version_id=version_id))


def execute(run_id: str, *, worker: str | None = None) -> RunState | None:
    """Run ``run_id`` once if this worker can claim it; returns the final state (None if not claimed)."""
    worker = worker or worker_name()
    with autocommit_scope() as session:  # the claim is one compare-and-set statement (two on its rare paths)
        run = runs.claim(session, run_id, worker)
        if run is None:
            log.info("run %s not claimed (finished, cancelled or owned by a live worker)", run_id)
            return None
        inputs, attempt, soft_limit, version_id = dict(run.inputs), run.attempts, run.soft_time_limit, run.version_id
        stream_node = run.stream_node

    rec = Recording(run_id=run_id, attempt=attempt)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        previous = signal.signal(signal.SIGUSR2, _raise_cancelled)
    beat = _Heartbeat(run_id, worker, rec, interrupt=in_main, soft_limit=soft_limit)
    beat.start()
    loads, outputs, stream = 0, None, None
    verdict = attempts.SUCCEEDED
    try:
        spec, pipeline, loads = cache().get(version_id, lambda: load_spec(version_id))
        rec.notices = {issue.node: issue.message for issue in knowledge_warnings(spec) if issue.node}
        extra = {}
        if stream_node and streams_while_calling_tools(pipeline.get_component(stream_node)):
            stream = TokenStream(run_id, rec, special_tokens(pipeline.get_component(stream_node)))
            extra[stream_node] = {"streaming_callback": stream}
        with recording(rec):
            _interruptible.set()
            try:
                outputs = run_pipeline(spec, pipeline, inputs, extra)
            finally:
                _interruptible.clear()
                _over_time.clear()
    except Exception as exc:  # noqa: BLE001 - any failure inside a user's workflow is the run's failure
        if isinstance(exc, NodeLoadError):
            rec.failed_to_start(exc.node, exc.component_type, redact(str(exc)))
        verdict = attempts.judge(exc, attempt, cancelled=(RunCancelled,), time_limit=(SoftTimeLimitExceeded,),
                                 time_limit_error=f"exceeded the soft time limit of {soft_limit:g} s "
                                                  "(STACKYARD_RUN_SOFT_TIME_LIMIT); stopped")
        if verdict.ending is not attempts.Ending.CANCELLED:
            log.warning("run %s failed: %s", run_id, verdict.error)
    finally:
        beat.done.set()
        beat.join(timeout=5)
        if in_main:
            signal.signal(signal.SIGUSR2, previous)
    with autocommit_scope() as session:
        rec.flush(session)  # the trace first: whoever sees the run move on sees all of it (ids stay real)
        run = runs.end_attempt(session, run_id, worker, verdict, outputs=outputs, model_loads=loads)
    if run is None:
        log.warning("run %s was taken from this worker (lease expired or cancelled); its outcome is dropped", run_id)
        return None
    if run.state == RunState.RETRYING:
        from worker.enqueue import enqueue

        enqueue(run, delay=verdict.delay)  # the row the UPDATE returned: no second read
        return run.state
    log.info("run %s %s (attempt %d, %d model loads)", run_id, run.state.value, attempt, loads)
    if stream is not None:
        stream.end(run.state.value, run.error)
    notify.announce(run_id, run.state.value, outputs=outputs, error=run.error)
    return run.state
