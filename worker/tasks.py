"""Celery tasks: thin wrappers that pass ids to plain functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from knowledge import writer as knowledge_writer
from stackyard.logs import log_context
from worker.app import INDEX_TASK, RUN_TASK, SCORE_TASK, celery_app
from worker.enqueue import enqueue_documents
from worker.runner import execute

if TYPE_CHECKING:
    from worker.reaper import Reaper

# A workflow's "Knowledge base writer" node, run here, sends what it added to be indexed.
knowledge_writer.send_with(enqueue_documents)


@celery_app.task(name=RUN_TASK, acks_late=True, reject_on_worker_lost=True)
def execute_run(run_id: str) -> str | None:
    with log_context(run_id=run_id):
        state = execute(run_id)
    return state.value if state else None


@celery_app.task(name=INDEX_TASK, acks_late=True, reject_on_worker_lost=True)
def index_document(document_id: str) -> str | None:
    from knowledge.indexing import index_document as index
    from knowledge.models import DocState
    from runs.attempts import lease

    state = index(document_id, beat_seconds=lease().beat_seconds)
    if state is DocState.QUEUED:          # indexed into a generation a re-index replaced meanwhile: again
        enqueue_documents([document_id])
    return state.value if state else None


@celery_app.task(name=SCORE_TASK, acks_late=True, reject_on_worker_lost=True)
def score_evaluation(evaluation_id: str) -> str | None:
    from evaluations.scoring import score
    from runs.attempts import lease

    state = score(evaluation_id, beat_seconds=lease().beat_seconds)
    return state.value if state else None


def _start_reaper(sender: object = None, **_: object) -> Reaper:
    """Celery's ``worker_ready`` fires before it logs "ready": the worker is announced (counted as consuming its
    queues) by then, and its reaper thread runs from there."""
    from worker.reaper import Reaper
    from worker.runner import worker_name

    queues = sorted(queue.name for queue in sender.task_consumer.queues) if sender is not None else []
    reaper = Reaper(worker_name(), queues)
    reaper.announce()
    reaper.start()
    return reaper


def _fresh_connections(**_: object) -> None:
    # Connections opened before the fork must not be shared with the pool's children.
    from store.db import get_engine

    get_engine().dispose(close=False)


def _configure_logging(loglevel: object = None, **_: object) -> None:
    # Connected, this replaces Celery's own logging setup: one format (text or JSON) in every process.
    from stackyard.logs import configure_logging

    configure_logging(level=loglevel if isinstance(loglevel, str) else None)


def connect_signals() -> None:
    from celery.signals import setup_logging, worker_process_init, worker_ready

    setup_logging.connect(_configure_logging, weak=False)
    worker_ready.connect(_start_reaper, weak=False)
    worker_process_init.connect(_fresh_connections, weak=False)


connect_signals()
