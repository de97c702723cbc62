"""Celery task of batch jobs: a thin wrapper that passes one item id to ``worker.batch.execute_item``."""

from __future__ import annotations

from stackyard.logs import log_context
from worker.app import ITEM_TASK, celery_app
from worker.batch import execute_item


@celery_app.task(name=ITEM_TASK, acks_late=True, reject_on_worker_lost=True)
def execute_job_item(item_id: int) -> str | None:
    with log_context(item_id=str(item_id)):
        state = execute_item(item_id)
    return state.value if state else None
