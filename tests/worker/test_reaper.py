"""The reaper's clean-ups never start the embedded vector store: a worker that never needed Milvus finds nothing
to drop (the conftest refuses process spawns in these unit tests, so starting milvus-lite would fail here)."""

from __future__ import annotations

import pytest

from nodes.stores import vector_store_running
from stackyard.settings import reset_settings_cache
from tests.support.stack import free_port
from worker.reaper import drop_orphan_collections


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
