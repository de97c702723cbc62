"""Put a committed run on its queue. Call only after the run row is committed."""

from __future__ import annotations

import logging

from workflows.models import Run

log = logging.getLogger("stackyard.enqueue")


def enqueue(run: Run, *, delay: float = 0.0) -> None:
    """Send the run's id to its queue (``delay`` seconds later, for retry backoff) with its time limits."""
    from worker.tasks import execute_run

    execute_run.apply_async(args=[run.id], queue=run.queue, countdown=delay or None,
                            soft_time_limit=run.soft_time_limit, time_limit=run.hard_time_limit)
    log.info("run %s queued on %s", run.id, run.queue, extra={"run_id": run.id})
