"""The reaper's clean-ups never start the embedded vector store: a worker that never needed Milvus finds nothing
to drop (the conftest refuses process spawns in these unit tests, so starting milvus-lite would fail here)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nodes.stores import vector_store_running
from runs import workers
from stackyard.settings import reset_settings_cache
from store.db import autocommit_scope
from tests.support.stack import free_port
from worker.reaper import drop_orphan_collections
from worker.tasks import _start_reaper


def test_the_orphan_sweep_leaves_a_stopped_embedded_store_stopped(database, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STACKYARD_MILVUS_LITE_PORT", str(free_port()))
    reset_settings_cache()
    assert vector_store_running() is False
    assert drop_orphan_collections() == []


def test_a_store_elsewhere_counts_as_running(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STACKYARD_MILVUS_URI", "http://milvus.internal:19530")
    reset_settings_cache()
    try:
        assert vector_store_running() is True
    finally:
        monkeypatch.delenv("STACKYARD_MILVUS_URI")
        reset_settings_cache()


def test_a_worker_serves_its_queues_by_the_time_celery_says_ready(database):
    """Celery logs "ready" after its ``worker_ready`` signal returns: a publish check made at that moment must find
    the worker (it once raced the reaper thread's first beat and refused to publish)."""
    consumer = SimpleNamespace(queues=[SimpleNamespace(name="gpu"), SimpleNamespace(name="cpu")])
    reaper = _start_reaper(SimpleNamespace(task_consumer=consumer))
    try:
        with autocommit_scope() as session:
            assert workers.live_workers(session) == {"cpu": 1, "gpu": 1}
    finally:
        reaper.stopped.set()
        reaper.join(timeout=60)
    assert not reaper.is_alive()
