"""Put a committed run on its queue. Call only after the run row is committed."""

from __future__ import annotations

import logging

from runs.models import Run
from stackyard.errors import StackyardError

log = logging.getLogger("stackyard.enqueue")


def enqueue(run: Run, *, delay: float = 0.0) -> None:
    """Send the run's id to its queue (``delay`` seconds later, for retry backoff) with its time limits."""
    from worker.app import RUN_TASK, celery_app

    celery_app.send_task(RUN_TASK, args=[run.id], queue=run.queue, countdown=delay or None,
                         soft_time_limit=run.soft_time_limit, time_limit=run.hard_time_limit)
    log.info("run %s queued on %s", run.id, run.queue, extra={"run_id": run.id})


class BrokerUnavailable(StackyardError):
    status = 503


def enqueue_new(run: Run) -> None:
    """Queue a run the caller just committed. If the broker cannot take it, the run is failed rather than
    left queued with no message (nothing would ever start it), and the caller gets a 503 saying why."""
    try:
        enqueue(run)
    except Exception as exc:  # noqa: BLE001 - Celery retried the publish already; any failure means not queued
        from runs import lifecycle as runs
        from store.db import session_scope

        reason = f"{type(exc).__name__}: {exc}"
        log.warning("run %s could not be queued: %s", run.id, reason, extra={"run_id": run.id})
        with session_scope() as session:
            runs.fail_unsent(session, run.id, reason)
        raise BrokerUnavailable(f"Run {run.id} could not be queued: the broker is unreachable ({reason}). Check that it "
                                "is up and STACKYARD_BROKER_URL points at it, then start the run again.") from exc


INDEX_QUEUE = "gpu"     # embedding is model-heavy work


def enqueue_documents(document_ids: list[str]) -> None:
    """Send committed knowledge-base documents to be indexed (embedding: the gpu queue). Those the broker cannot
    take are marked failed, not left queued with no message (``retry`` sends them again), and the caller gets a
    503 saying why."""
    from worker.app import INDEX_TASK, celery_app

    for index, document_id in enumerate(document_ids):
        try:
            celery_app.send_task(INDEX_TASK, args=[document_id], queue=INDEX_QUEUE)
        except Exception as exc:  # noqa: BLE001 - Celery retried the publish already; any failure means not sent
            from knowledge import lifecycle as knowledge
            from store.db import session_scope

            reason = f"could not be queued: the broker is unreachable ({type(exc).__name__}: {exc})"
            with session_scope() as session:
                for unsent in document_ids[index:]:
                    knowledge.unsent(session, unsent, reason)
            raise BrokerUnavailable(f"{len(document_ids) - index} document(s) {reason}. Check that it is up and "
                                    "STACKYARD_BROKER_URL points at it, then retry them.") from exc
    if document_ids:
        log.info("%d document(s) queued for indexing on gpu", len(document_ids))
