"""Shared fixtures: an isolated data dir per test, real SQLite and PostgreSQL databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
# Starlette's TestClient sends `Host: testserver`; the host guard answers only hosts it serves.
os.environ.setdefault("STACKYARD_ALLOWED_HOSTS", "testserver")

POSTGRES_ADMIN_URL = os.environ.get("STACKYARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh STACKYARD_DATA_DIR (with its files root) and settings that read it."""
    from stackyard.settings import reset_settings_cache

    root = tmp_path / "data"
    (root / "files").mkdir(parents=True)
    monkeypatch.setenv("STACKYARD_DATA_DIR", str(root))
    for name in ("STACKYARD_DATABASE_URL", "STACKYARD_FILES_ROOT", "STACKYARD_MODEL_PATHS"):
        monkeypatch.delenv(name, raising=False)
    reset_settings_cache()
    yield root
    reset_settings_cache()


def _postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"stackyard_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from workflows.db import _engine_for

        _engine_for.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated, empty database: the SQLite default and a real PostgreSQL one."""
    from stackyard.settings import reset_settings_cache
    from workflows.db import _engine_for, migrate

    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'stackyard.db'}"
        yield_from = iter([url])
    else:
        yield_from = _postgres_database()
    url = next(yield_from)
    monkeypatch.setenv("STACKYARD_DATABASE_URL", url)
    reset_settings_cache()
    migrate(url)
    yield url
    _engine_for.cache_clear()
    for _ in yield_from:
        pass


@pytest.fixture
def milvus(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The embedded milvus-lite server for this test's data dir, on a free port; stopped afterwards."""
    import socket

    from nodes.stores import ensure_vector_store, stop_vector_store
    from stackyard.settings import get_settings, reset_settings_cache

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("STACKYARD_MILVUS_LITE_PORT", str(port))
    reset_settings_cache()
    uri = ensure_vector_store()
    yield uri
    stop_vector_store(get_settings())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny chat model (answers "the answer is stackyard"), built once per session."""
    from tests.support.models import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def cold_model(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A second copy at another path: a model config no other test loads, to observe a cold load."""
    from tests.support.models import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-model-cold"))
