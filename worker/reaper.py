"""The reaper: re-enqueues runs whose worker died and fails runs past their hard limit.

Every worker runs one in a background thread; the compare-and-set in ``workflows.runs.transition``
makes concurrent reapers safe (one wins each run). This is what makes a SIGKILLed worker's run come
back within seconds on any broker, instead of waiting for Redis's visibility timeout.
"""

from __future__ import annotations

import logging
import threading

from workflows import runs, workers
from workflows.db import session_scope
from workflows.models import Run
from worker import batch, notify
from worker.enqueue import enqueue

log = logging.getLogger("stackyard.reaper")
INTERVAL_SECONDS = 5.0


def reap_once() -> list[str]:
    with session_scope() as session:
        requeue, failed = runs.reap(session)
        rows = [session.get(Run, run_id) for run_id in requeue]
    for run_id in failed:
        notify.announce(run_id, "failed")
    for run in rows:
        log.warning("run %s lost its worker; re-enqueued (attempt %s)", run.id, run.attempts + 1)
        enqueue(run)
    return requeue


class Reaper(threading.Thread):
    """Announces this worker (name + queues) and reaps, every ``interval`` seconds."""

    def __init__(self, name: str, queues: list[str], interval: float = INTERVAL_SECONDS) -> None:
        super().__init__(daemon=True, name="stackyard-reaper")
        self.worker, self.queues, self.interval = name, queues, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                with session_scope() as session:
                    workers.beat(session, name=self.worker, queues=self.queues)
                reap_once()
                batch.pump()  # batch jobs: recover lost items, fill free slots, send rate-limited items
            except Exception:  # noqa: BLE001 - keep reaping; the next pass retries
                log.exception("reaper pass failed")
            if self.stopped.wait(self.interval):
                break
