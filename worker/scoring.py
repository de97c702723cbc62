"""Evaluations whose job is over are claimed for scoring and sent to a worker: by the worker that finished the
job's last case, at once, and by every reaper pass for any that was missed (a lost message, a scorer that died).
Each worker also scores the cases it ran, a batch at a time, as their runs end (:class:`CaseScorer`).
"""

from __future__ import annotations

import logging
import threading
import time

from evaluations.scoring import FinishedCase, score_finished
from runs.attempts import lease
from store.db import session_scope

log = logging.getLogger("stackyard.evaluations")


def send_scoring() -> list[str]:
    """Evaluations whose job is over, claimed for scoring and sent to a worker (cpu queue); those a scorer
    took but stopped beating for four leases (it died) are claimed and sent again."""
    from evaluations import lifecycle as evaluations
    from worker.app import SCORE_TASK, celery_app

    stale = evaluations.heartbeat_due(4 * lease().seconds)
    sent = []
    with session_scope() as session:
        due = evaluations.due_for_scoring(session, stale_before=stale)
    for evaluation_id in due:
        with session_scope() as session:
            if evaluations.claim_scoring(session, evaluation_id, stale_before=stale) is None:
                continue
        celery_app.send_task(SCORE_TASK, args=[evaluation_id], queue="cpu")
        sent.append(evaluation_id)
    return sent


class CaseScorer:
    """One thread per worker process scores the evaluation cases this process ran, in batches, while the next
    runs go on: a model is faster on a batch (MiniLM's SAS of short answers: 2.7 ms a case in batches of 16,
    16 ms one at a time), and the thread uses a core the run leaves idle. A case waits at most ``linger``
    seconds for others to share its batch. What is pending when the process dies, or past ``limit`` (scoring
    behind), is left to the evaluation's scorer, which scores every unscored case when the job is over.
    Evaluations with an LLM judge are not queued here (see ``evaluations.scoring.scoring_mode``)."""

    def __init__(self, batch: int = 32, linger: float = 0.5, limit: int = 256) -> None:
        self.batch, self.linger, self.limit = batch, linger, limit
        self._pending: list[FinishedCase] = []
        self._scoring = 0
        self._hurry = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, case: FinishedCase) -> bool:
        """Queue a finished case for scoring; False when the queue is full (the evaluation's scorer scores it)."""
        with self._cond:
            if len(self._pending) >= self.limit:
                return False
            self._pending.append(case)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="stackyard-case-scorer")
                self._thread.start()
            self._cond.notify_all()
        return True

    def flush(self, timeout: float) -> bool:
        """Score what is queued now, without lingering; True once nothing is queued or being scored."""
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: not self._pending and not self._scoring, timeout)
            self._hurry = self._hurry and bool(self._pending)
            return done

    def _take(self) -> list[FinishedCase]:
        with self._cond:
            self._cond.wait_for(lambda: self._pending)
            deadline = time.monotonic() + self.linger
            while len(self._pending) < self.batch and not self._hurry and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            taken, self._pending = self._pending[:self.batch], self._pending[self.batch:]
            self._scoring = len(taken)
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            try:
                score_finished(taken)
            except Exception:  # noqa: BLE001 - the evaluation's scorer scores what a worker could not
                log.exception("could not score %d evaluation case(s); the evaluation's scorer will", len(taken))
            finally:
                with self._cond:
                    self._scoring = 0
                    self._hurry = self._hurry and bool(self._pending)
                    self._cond.notify_all()
