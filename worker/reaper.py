"""The reaper: re-enqueues runs whose worker died, fails runs past their hard limit, and sends again
work whose message the broker lost.

Every worker runs one in a background thread; the compare-and-set in ``runs.lifecycle.transition``
makes concurrent reapers safe (one wins each run). This is what makes a SIGKILLed worker's run come
back within seconds on any broker, instead of waiting for Redis's visibility timeout.

Each pass also asks the broker how many messages its queues hold: a run or job item the database says
is queued, on a queue the broker holds nothing for (a Redis restart without persistence, a failover, a
flush), is sent again on that pass (``runs.lifecycle.resend_lost``, ``jobs.dispatch``). So is all work sent
before the broker restarted (Redis's ``run_id`` changed since the previous pass), even if new work already
sits on the queue.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from conversations import threads
from knowledge import generations, search
from knowledge import lifecycle as knowledge
from nodes.stores import vector_store_running
from runs import lifecycle as runs
from runs import workers
from runs.attempts import MAX_ATTEMPTS, died_each_time, lease
from runs.lifecycle import QueueDepths
from stackyard.settings import get_settings
from store.clock import utcnow
from store.db import session_scope
from worker import batch, notify, scoring
from worker.app import look_at_broker
from worker.enqueue import INDEX_QUEUE, enqueue, enqueue_documents

log = logging.getLogger("stackyard.reaper")
ORPHAN_EVERY = 12      # passes between looks for collections of deleted knowledge bases (a Milvus round trip)


def reap_once() -> list[str]:
    with session_scope() as session:
        requeue, failed = runs.reap(session)
    for run in failed:
        notify.announce(run.id, run.state.value, error=run.error)
    for run in requeue:
        log.warning("run %s lost its worker; re-enqueued (attempt %s)", run.id, run.attempts + 1)
        enqueue(run)
    return [run.id for run in requeue]


def reap_documents() -> list[str]:
    """Knowledge-base documents whose indexing worker died: sent again (or failed after the attempt cap)."""
    with session_scope() as session:
        again = knowledge.take_back_stale(session, stale_before=utcnow() - timedelta(seconds=lease().seconds),
                                          max_attempts=MAX_ATTEMPTS, gave_up=died_each_time(MAX_ATTEMPTS))
    for document_id in again:
        log.warning("document %s lost its indexing worker; sent again", document_id)
    enqueue_documents(again)
    return again


def drop_retired_generations(grace_seconds: float | None = None) -> list[str]:
    """Collections of knowledge-base generations replaced by a re-index at least ``grace_seconds`` ago (four
    leases: no query or warm pipeline can still be reading them): dropped. Returns their names."""
    grace = 4 * lease().seconds if grace_seconds is None else grace_seconds
    settings = get_settings()
    with session_scope() as session:
        retired = generations.retired(session, before=utcnow() - timedelta(seconds=grace))
    dropped = []
    for kb_id, generation in retired:
        dropped += search.drop_generations(kb_id, settings, up_to=generation)
        with session_scope() as session:
            generations.forget_retired(session, kb_id, generation)
    return dropped


def drop_orphan_collections() -> list[str]:
    """Collections of knowledge bases that no longer exist (a worker wrote a last batch after its base was
    deleted): dropped. Returns their names."""
    settings = get_settings()
    if not vector_store_running(settings):           # nothing can have been written: do not start milvus-lite
        return []
    listed = search.base_collections(settings)      # listed first: a base made after this is not among them
    if not listed:
        return []
    with session_scope() as session:
        known = generations.base_ids(session)
    dropped = []
    for kb_id in set(listed) - known:
        dropped += search.drop_generations(kb_id, settings)
        log.warning("dropped collection(s) %s: their knowledge base was deleted", ", ".join(listed[kb_id]))
    return dropped


def purge_conversations() -> int:
    """Conversations not continued for ``STACKYARD_CONVERSATION_RETENTION_DAYS``, with their messages."""
    days = get_settings().conversation_retention_days
    if not days:
        return 0
    with session_scope() as session:
        gone = threads.purge(session, before=utcnow() - timedelta(days=days))
    if gone:
        log.info("deleted %d conversation(s) older than %d days (STACKYARD_CONVERSATION_RETENTION_DAYS)", gone, days)
    return gone


def look_at_queues(queues: list[str], previous: QueueDepths | None = None) -> QueueDepths | None:
    """What the broker holds on ``queues`` now, marked restarted if its instance is not the one ``previous``
    saw; None when it cannot be asked (nothing is presumed lost)."""
    try:
        counts, instance = look_at_broker(queues)
    except Exception as exc:  # noqa: BLE001 - the broker is down: nothing can be sent anyway
        log.warning("reaper could not read the queues (%s: %s); lost messages are looked for next pass",
                    type(exc).__name__, exc)
        return None
    depths = QueueDepths(counts, utcnow(), broker=instance).after(previous)
    if depths.restarted:
        log.warning("the broker restarted (instance %s, was %s): work queued before it is sent again",
                    instance, previous.broker if previous else None)
    return depths


def resend_lost(depths: QueueDepths) -> list[str]:
    """Send again the runs, and the knowledge-base documents, whose message the broker lost; returns their ids."""
    with session_scope() as session:
        lost = runs.resend_lost(session, depths=depths)
    for run in lost:
        log.warning("run %s was waiting on queue %s, but the broker no longer holds its message; sent again",
                    run.id, run.queue, extra={"run_id": run.id})
        enqueue(run)
    documents: list[str] = []
    if depths.empty(INDEX_QUEUE):          # documents are sent to the gpu queue; only an empty one is judged
        with session_scope() as session:
            documents = knowledge.resend_lost(session, lost_before=depths.lost_before)
        for document_id in documents:
            log.warning("document %s was queued for indexing, but the broker no longer holds its message; sent "
                        "again", document_id)
        enqueue_documents(documents)
    return [run.id for run in lost] + documents


class Reaper(threading.Thread):
    """Announces this worker (name + queues) and reaps, every ``interval`` seconds (a third of the lease)."""

    def __init__(self, name: str, queues: list[str], interval: float | None = None) -> None:
        super().__init__(daemon=True, name="stackyard-reaper")
        self.worker, self.queues = name, queues
        self.interval = interval or lease().look_seconds
        self.stopped = threading.Event()
        self.last_look: QueueDepths | None = None  # the broker's instance seen last, to notice a restart

    def announce(self) -> None:
        """Count this worker as consuming its queues now. Called before Celery logs "ready", so a publish check
        (or anything else that asks which queues are served) made the moment it reads "ready" finds it."""
        try:
            with session_scope() as session:
                workers.beat(session, name=self.worker, queues=self.queues)
        except Exception:  # noqa: BLE001 - the database is down: the reaper's passes announce it when it is back
            log.exception("could not announce worker %s", self.worker)

    def run(self) -> None:
        passes = 0
        while True:
            passes += 1
            try:
                if passes > 1:          # the first pass follows announce(), made before the thread started
                    with session_scope() as session:
                        workers.beat(session, name=self.worker, queues=self.queues)
                reap_once()
                reap_documents()
                scoring.send_scoring()
                drop_retired_generations()
                if passes % ORPHAN_EVERY == 0:
                    drop_orphan_collections()
                    purge_conversations()
                depths = look_at_queues(self.queues, self.last_look)
                if depths is not None:
                    self.last_look = depths
                    resend_lost(depths)
                # batch jobs: recover lost items, fill free slots, send rate-limited items
                batch.pump(depths=depths)
            except Exception:  # noqa: BLE001 - keep reaping; the next pass retries
                log.exception("reaper pass failed")
            if self.stopped.wait(self.interval):
                break
