"""Real Stackyard processes for integration tests: a web server and Celery workers as subprocesses.

``Stack`` owns a data dir, a database (SQLite file or a fresh PostgreSQL database), a broker (a
dedicated Redis database index or the embedded SQLite broker) and a milvus-lite port; it starts
``stackyard web`` / ``stackyard worker`` with that environment and stops everything at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from stackyard.processes import STACKYARD

REDIS_URL = os.environ.get("STACKYARD_TEST_REDIS", "redis://127.0.0.1:6379")
POSTGRES_ADMIN_URL = os.environ.get("STACKYARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def redis_db(base: int) -> int:
    """A Redis database index for this test process. Tests flush their database, so each pytest-xdist worker
    gets its own: bases 7-10 map to 4-7 on gw0, 8-11 on gw1, 12-15 on gw2 (Redis has 16; 0-3 stay free)."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    index = base - 3 + 4 * worker
    if not 4 <= index <= 15:
        raise RuntimeError(f"Redis database {index} (base {base}, xdist worker {worker}) does not exist: run at most "
                           "3 xdist workers (-n 3) and bases 7-10.")
    return index


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {message}")


@dataclass
class Stack:
    root: Path
    database_url: str
    broker_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    milvus_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)
    web: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def files_root(self) -> Path:
        return self.data_dir / "files"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")}
        env.update({
            "STACKYARD_DATA_DIR": str(self.data_dir),
            "STACKYARD_DATABASE_URL": self.database_url,
            "STACKYARD_BROKER_URL": self.broker_url,
            "STACKYARD_MILVUS_LITE_PORT": str(self.milvus_port),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HAYSTACK_TELEMETRY_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
            # Building the editor's palette at start costs a web process ~8 CPU-s and ~250 MiB; the editor's
            # browser tests and the fuzzer (which times GET /api/v1/nodes) turn it back on (extra_env).
            "STACKYARD_EDITOR_WARM_UP": "false",
            # A crashed worker's work comes back after 8 s, not 15: the crash and broker-loss tests wait on it.
            "STACKYARD_WORKER_LEASE_SECONDS": "8",
        })
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def _spawn(self, args: list[str], log: str, **env: str) -> subprocess.Popen:
        out = open(self.root / log, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([*STACKYARD, *args], env=self.env(**env), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(proc)
        return proc

    def start_web(self, **env: str) -> None:
        self.files_root.mkdir(parents=True, exist_ok=True)
        self.web = self._spawn(["web", "--port", str(self.port)], "web.log", **env)
        wait_until(self._web_up, timeout=120, message=f"web server on {self.port} (see {self.root / 'web.log'})")

    def _web_up(self) -> bool:
        if self.web and self.web.poll() is not None:
            raise AssertionError(f"web server exited: {(self.root / 'web.log').read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self, queues: str = "cpu,gpu", concurrency: int = 1, name: str = "worker", **env: str) -> subprocess.Popen:
        proc = self._spawn(["worker", "--queues", queues, "--concurrency", str(concurrency), "--loglevel", "info"],
                           f"{name}.log", **env)
        log = self.root / f"{name}.log"
        wait_until(lambda: log.exists() and b" ready." in log.read_bytes() or self._dead(proc, log), timeout=90,
                   message=f"worker ready (see {log})")
        return proc

    @staticmethod
    def _dead(proc: subprocess.Popen, log: Path) -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited: {log.read_text()[-3000:]}")
        return False

    @staticmethod
    def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal the process and its pool children (its own session), as a crash would."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def discard(self, proc: subprocess.Popen) -> None:
        """End a process the test is done with. SIGKILL: nothing afterwards looks at how it ended, and a graceful
        stop costs a worker 2-6 s idle (30 s on a loaded machine) while Celery's pool waits out its result
        handler. Tests of graceful stops send SIGTERM themselves."""
        self.kill(proc)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                self.discard(proc)
        from nodes.stores import stop_vector_store
        from stackyard.settings import Settings

        stop_vector_store(Settings(data_dir=self.data_dir, milvus_lite_port=self.milvus_port))

    # --- HTTP helpers -------------------------------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base_url}{path}", timeout=kwargs.pop("timeout", 60), **kwargs)

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        response = self.api("POST", "/api/v1/workflows", json={"name": name, "spec": spec})
        assert response.status_code == 201, response.text
        return response.json()

    def start_run(self, workflow: str, inputs: dict[str, Any], **body: Any) -> dict[str, Any]:
        # A run asked to wait gets that long plus a margin: the client must not give up before the server does.
        timeout = max(60.0, float(body.get("wait") or 0) + 30)
        response = self.api("POST", f"/api/v1/workflows/{workflow}/runs", json={"inputs": inputs, **body}, timeout=timeout)
        assert response.status_code in (200, 202), response.text
        return response.json()

    def run(self, run_id: str) -> dict[str, Any]:
        response = self.api("GET", f"/api/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_state(self, run_id: str, states: set[str], timeout: float = 120) -> dict[str, Any]:
        return wait_until(lambda: (run := self.run(run_id))["state"] in states and run, timeout=timeout, interval=0.2,
                          message=f"run {run_id} to reach {states}")


def model_paths_env(mapping: dict[str, Path]) -> dict[str, str]:
    return {"STACKYARD_MODEL_PATHS": json.dumps({name: str(path) for name, path in mapping.items()})}


_template: str | None = None   # this process's migrated database that migrated test databases are copied from


def _migrated_template() -> str:
    """The name of a PostgreSQL database at the newest migration, made once per process (copying it costs about
    half of creating and migrating a database); dropped when the process exits."""
    global _template
    if _template is None:
        import atexit

        from sqlalchemy import create_engine, text

        from store.db import _engine_for, migrate

        name = f"stackyard_template_{uuid.uuid4().hex[:10]}"
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        migrate(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
        _engine_for.cache_clear()
        with admin.connect() as conn:   # a copy needs its source without connections (the migration's pool)
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name "
                              "AND pid <> pg_backend_pid()"), {"name": name})
        admin.dispose()

        def drop() -> None:
            engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            engine.dispose()

        atexit.register(drop)
        _template = name
    return _template


@contextmanager
def postgres_database(*, migrated: bool = False) -> Iterator[str]:
    """A new PostgreSQL database's URL, empty or (``migrated``) at the newest migration; dropped afterwards (with
    whatever is still connected)."""
    from sqlalchemy import create_engine, text

    name = f"stackyard_test_{uuid.uuid4().hex[:10]}"
    template = f' TEMPLATE "{_migrated_template()}"' if migrated else ""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{template}'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from store.db import _engine_for

        _engine_for.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def postgres_stack(root: Path, *, broker_url: str, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A :class:`Stack` on a new PostgreSQL database; what it started is stopped and the database dropped after.

    Example::

        with postgres_stack(tmp_path, broker_url=f"{REDIS_URL}/{redis_db(7)}") as stack:
            stack.start_web()
    """
    with postgres_database() as url:
        stack = Stack(root=root, database_url=url, broker_url=broker_url, extra_env=extra_env or {})
        try:
            yield stack
        finally:
            stack.stop()


class RedisServer:
    """A private redis-server started like CI's: `--save "" --appendonly no`, so a restart loses every message."""

    def __init__(self, root: Path) -> None:
        self.port, self.root = free_port(), root
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(self.port),
                        "--save", "", "--appendonly", "no", "--dir", str(self.root),
                        "--logfile", str(self.root / "redis.log"), "--pidfile", str(self.root / "redis.pid")], check=True)
        wait_until(self._pings, timeout=20, message=f"redis-server on {self.port}")

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True, timeout=20)
        wait_until(lambda: not self._pings(), timeout=20, message="redis-server to stop")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no shutdown, nothing saved, every message lost."""
        os.kill(int((self.root / "redis.pid").read_text()), signal.SIGKILL)
        wait_until(lambda: not self._pings(), timeout=20, message="redis-server to die")
        (self.root / "redis.pid").unlink(missing_ok=True)

    def _pings(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_timeout=1).ping()
        except redis.RedisError:
            return False


def start_web_and_worker(stack: Stack, name: str) -> subprocess.Popen:
    """Both at once (each start is mostly imports, one core each); returns the worker."""
    from store.db import migrate

    migrate(stack.database_url)  # first, so the two processes do not both create the schema
    stack.files_root.mkdir(parents=True, exist_ok=True)
    stack.web = stack._spawn(["web", "--port", str(stack.port)], "web.log")
    proc = stack._spawn(["worker", "--queues", "cpu,gpu", "--concurrency", "1", "--loglevel", "info"], f"{name}.log")
    log = stack.root / f"{name}.log"
    wait_until(lambda: log.exists() and b" ready." in log.read_bytes() or stack._dead(proc, log), timeout=90,
               message=f"worker ready (see {log})")
    wait_until(stack._web_up, timeout=90, message=f"web server (see {stack.root / 'web.log'})")
    return proc


TINY = "stackyard-test/tiny-chat"
TINY_COLD = "stackyard-test/tiny-chat-cold"   # loaded by one test only, to observe a cold load
# Each test session flushes this database; parallel sessions on one machine pick different bases.
REDIS_DB = redis_db(int(os.environ.get("STACKYARD_TEST_REDIS_DB", "9")))


def process_stack(kind: str, root: Path, tiny_model: Path, cold_model: Path) -> Iterator[Stack]:
    """A stack on Redis + PostgreSQL (``kind`` "redis") or the embedded SQLite broker and database ("embedded"),
    with the tiny chat models and the in-test OpenAI-compatible server configured; nothing started yet."""
    from tests.support.specs import REMOTE_LLM_ENV

    env = {**model_paths_env({TINY: tiny_model, TINY_COLD: cold_model}), **REMOTE_LLM_ENV}
    if kind == "redis":
        redis.Redis.from_url(f"{REDIS_URL}/{REDIS_DB}").flushdb()
        with postgres_stack(root, broker_url=f"{REDIS_URL}/{REDIS_DB}", extra_env=env) as stack:
            yield stack
        return
    broker = f"sqla+sqlite:///{root / 'data' / 'broker.db'}"
    stack = Stack(root=root, database_url=f"sqlite:///{root / 'data' / 'stackyard.db'}", broker_url=broker,
                  extra_env={**env, "STACKYARD_BROKER_URL": broker})
    try:
        yield stack
    finally:
        stack.stop()
