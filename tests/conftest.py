"""Shared fixtures: an isolated data dir per test, real SQLite and PostgreSQL databases."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports worker.app: its Celery app is made once per process from the settings of that moment.
# With no STACKYARD_DATA_DIR then, every test process (and the developer's own `make run`) shared the embedded
# broker under ~/.local/share/stackyard, and one xdist worker's queued runs showed in another's queue depths.
_PROCESS_DATA = tempfile.mkdtemp(prefix="stackyard-test-process-")
os.environ["STACKYARD_DATA_DIR"] = _PROCESS_DATA
atexit.register(shutil.rmtree, _PROCESS_DATA, True)

from tests.support.stack import RedisServer, Stack, postgres_database, process_stack  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
# Starlette's TestClient sends `Host: testserver`; the host guard answers only hosts it serves.
os.environ.setdefault("STACKYARD_ALLOWED_HOSTS", "testserver")


# The modules that took longest in a whole `make test` (2026-12-04, seconds of test time: 228, 201, 156, 104,
# 84, 79), longest first. xdist hands out modules in collection order: started last, as their paths sort,
# they ran alone for the suite's last minutes while the other workers sat idle.
LONGEST_FIRST = ("tests/worker/test_crash_integration.py", "tests/worker/test_limits_integration.py",
                 "tests/worker/test_jobs_integration.py", "tests/api/test_fuzz_integration.py",
                 "tests/worker/test_broker_loss_integration.py", "tests/knowledge/test_indexing_integration.py",
                 "tests/ui/test_editor_browser.py")


def pytest_sessionstart(session: pytest.Session) -> None:
    """The suite's clock starts in the process that prints the summary (xdist's controller, or the only one)."""
    if not hasattr(session.config, "workerinput"):
        from tests.support.suite_clock import SuiteClock

        session.config.stash[_CLOCK] = SuiteClock.start()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # noqa: ANN001 - pytest's reporter
    if (clock := config.stash.get(_CLOCK, None)) is not None:
        terminalreporter.write_line(clock.report())


_CLOCK = pytest.StashKey["SuiteClock"]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the longest modules first, then the other slow ones, then the rest (each in its own order)."""

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        if path in LONGEST_FIRST:
            return LONGEST_FIRST.index(path)
        return len(LONGEST_FIRST) + (0 if item.get_closest_marker("slow") else 1)

    items.sort(key=rank)


# `make check` runs no process of its own: a test that spawns one (a CLI, a worker, milvus-lite, a probe
# interpreter) is marked integration. Python reports every spawn to audit hooks, so a test that forgets the
# marker fails here naming it, rather than slowing the fast lane unnoticed.
_unit_test: list[str] = []   # the nodeid of the unmarked test now running, if any
_SPAWNS = {"subprocess.Popen", "os.posix_spawn", "os.exec", "os.fork", "os.system"}


def _refuse_spawns_in_unit_tests(event: str, args: tuple) -> None:
    if event in _SPAWNS and _unit_test:
        raise RuntimeError(f"{_unit_test[0]} starts a process ({event} {str(args)[:200]}): mark it "
                           "@pytest.mark.integration (make check starts no processes)")


sys.addaudithook(_refuse_spawns_in_unit_tests)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    unit = not any(item.get_closest_marker(name) for name in ("integration", "browser"))
    if unit:
        _unit_test.append(item.nodeid)
    try:
        return (yield)
    finally:
        _unit_test.clear()


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


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated, empty database: the SQLite default and a real PostgreSQL one."""
    from stackyard.settings import reset_settings_cache
    from store.db import _engine_for, migrate

    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{data_dir / 'stackyard.db'}"
            migrate(url)
        else:
            url = stack.enter_context(postgres_database(migrated=True))   # a copy of a migrated one
        monkeypatch.setenv("STACKYARD_DATABASE_URL", url)
        reset_settings_cache()
        yield url
        _engine_for.cache_clear()


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the module's own (CI's flags, no persistence): stopping or killing it loses every
    queued message, as a restart of the shared Redis would, without cutting other tests off their broker."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workflow(database: str) -> str:
    """A stored one-node workflow, ``greet`` (input ``name``, output ``greeting``), in each database."""
    from tests.support.workflows import create_greet

    return create_greet()


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


@pytest.fixture(scope="module", params=["redis", "embedded"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path,
          cold_model: Path) -> Iterator[Stack]:
    """Real processes on Redis + PostgreSQL, then on the embedded broker and SQLite: the web server running;
    tests start the workers they need."""
    gen = process_stack(request.param, tmp_path_factory.mktemp(f"stack-{request.param}"), tiny_model, cold_model)
    stack = next(gen)
    stack.kind = request.param
    stack.start_web()
    yield stack
    for _ in gen:
        pass
