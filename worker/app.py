"""The one Celery app. Broker from settings; queues ``cpu`` and ``gpu``; crash-safe delivery.

Delivery settings and why:
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a worker killed mid-run does not lose its run.
- ``worker_prefetch_multiplier=1``: runs are long; a worker holds one message at a time.
- Redis ``visibility_timeout`` above the longest run (hard limit × 2, at least an hour): a shorter one
  re-delivers healthy long runs. Crash recovery does not wait for it: the reaper re-enqueues runs whose
  database lease (heartbeat) expired.
- JSON only: only run ids cross the queue.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from stackyard.settings import Settings, get_settings

QUEUES = ("cpu", "gpu")


def broker_options(settings: Settings) -> dict:
    url = settings.resolved_broker_url
    if url.startswith(("redis://", "rediss://")):
        return {
            "broker_transport_options": {
                "visibility_timeout": max(3600, int(settings.run_hard_time_limit * 2)),
                "socket_keepalive": True,
                "health_check_interval": 10,
            },
        }
    if url.startswith("sqla+"):
        return {"broker_url": url.removeprefix("sqla+"), "broker_transport": "worker.embedded_broker:Transport"}
    return {}


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    if settings.resolved_broker_url.startswith("sqla+sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("stackyard", broker=settings.resolved_broker_url, include=["worker.tasks", "worker.batch_tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="cpu",
        task_queues=[Queue(name) for name in QUEUES],
        task_create_missing_queues=False,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        **broker_options(settings),
    )
    return app


celery_app = make_celery()
# Senders name a task instead of importing it: sending needs only this module, not the code that runs it.
RUN_TASK = "stackyard.execute_run"
ITEM_TASK = "stackyard.execute_job_item"
INDEX_TASK = "stackyard.index_document"   # a knowledge-base document; embedding routes it to the gpu queue
SCORE_TASK = "stackyard.score_evaluation"  # an evaluation whose job is over


def queue_depths(queues: tuple[str, ...] | list[str] = QUEUES, *, app: Celery | None = None) -> dict[str, int]:
    """How many messages the broker holds on each queue now (raises when it is unreachable)."""
    return look_at_broker(queues, app=app, identify=False)[0]


def look_at_broker(queues: tuple[str, ...] | list[str] = QUEUES, *, app: Celery | None = None,
                   identify: bool = True) -> tuple[dict[str, int], str | None]:
    """The messages the broker holds on each queue now, and (``identify``) the broker's instance where it can
    tell (Redis's ``run_id``, new at every restart; None for the embedded broker). Raises when the broker is
    unreachable."""
    from kombu.exceptions import ChannelError

    depths: dict[str, int] = {}
    with (app or celery_app).connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        channel = conn.default_channel
        for queue in queues:
            try:
                depths[queue] = channel.queue_declare(queue, passive=True).message_count
            except ChannelError:  # Redis drops an empty list: the queue exists once a message is sent
                depths[queue] = 0
        instance = _instance(getattr(channel, "client", None)) if identify else None
    return depths, instance


def _instance(client: object) -> str | None:
    """Redis's ``run_id`` (new at every restart); None where it cannot be read (the embedded broker, or a Redis
    whose ACL denies INFO): then restarts are noticed by empty queues alone."""
    info = getattr(client, "info", None)
    if not callable(info):
        return None
    try:
        return info("server").get("run_id")
    except Exception:  # noqa: BLE001 - NOPERM, a proxy without INFO: an unknown instance, not a failed look
        return None
