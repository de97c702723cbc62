"""A bare Celery app with one no-op task: the raw round-trip baseline for bench/runs.py (not used by Stackyard)."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("bench_noop", broker=os.environ["BENCH_BROKER"], backend=os.environ["BENCH_BACKEND"])
app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json", worker_prefetch_multiplier=1,
                # BENCH_ACKS_LATE=1: the crash-safe delivery Stackyard's worker must use (acks after the task).
                task_acks_late=os.environ.get("BENCH_ACKS_LATE") == "1",
                task_reject_on_worker_lost=os.environ.get("BENCH_ACKS_LATE") == "1")


@app.task(name="bench.noop")
def noop() -> None:
    return None
