"""Evaluations whose job is over are claimed for scoring and sent to a worker: by the worker that finished the
job's last case, at once, and by every reaper pass for any that was missed (a lost message, a scorer that died).
"""

from __future__ import annotations

from runs.attempts import lease
from store.db import session_scope


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
