"""The vector store every Stackyard process shares.

milvus-lite opens a data directory from one process only, so by default Stackyard runs it as a local
gRPC server (``python -m milvus_lite server``, see ``_milvus_lite_server``) that the web process and
every worker reach by URI — the same ``http://host:port`` shape as a Milvus server. The first process
that needs the store starts the server in the background; the others find it answering. With
``STACKYARD_MILVUS_URI`` set nothing is started.

Files under ``data_dir``: ``milvus/`` (data), ``milvus-lite.log``, ``milvus-lite.pid``,
``milvus-lite.lock`` (serialises start and stop between processes).

Example::

    from nodes.stores import milvus_document_store, stop_vector_store
    store = milvus_document_store("documents")      # starts milvus-lite on first use
    DocumentWriter(document_store=store).run(documents=docs)
    stop_vector_store()                             # `stackyard up` does this on shutdown
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackyard.errors import StackyardError
from stackyard.settings import Settings, get_settings

if TYPE_CHECKING:  # pymilvus takes ~1.5 s to import; `stackyard up` only starts and stops the server.
    from milvus_haystack import MilvusDocumentStore

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
_HOST = "127.0.0.1"

# Run with -P so its folder stays off sys.path (no `nodes/*.py` shadowing top-level modules).
_SERVER_SCRIPT = Path(__file__).with_name("_milvus_lite_server.py")

# Servers this process started, so it can reap them (a dead child stays a zombie until waited for).
_children: dict[int, subprocess.Popen] = {}


class VectorStoreUnavailable(StackyardError):
    """The embedded milvus-lite server could not be started or reached."""

    status = 503


@dataclass(frozen=True)
class _Paths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "milvus"

    @property
    def log(self) -> Path:
        return self.root / "milvus-lite.log"

    @property
    def pid(self) -> Path:
        return self.root / "milvus-lite.pid"

    @property
    def lock(self) -> Path:
        return self.root / "milvus-lite.lock"


def ensure_vector_store(settings: Settings | None = None, *, timeout: float = START_TIMEOUT) -> str:
    """Return the Milvus URI to use, starting the embedded milvus-lite server if it is not running.

    Safe to call from many processes at once: an exclusive file lock in ``data_dir`` makes exactly one
    of them start the server while the others wait and then find it answering. Cheap once the server
    is up (one loopback connect), so call it whenever a store is built.
    """
    settings = settings or get_settings()
    if not settings.embedded_milvus:
        return settings.resolved_milvus_uri
    port, uri = settings.milvus_lite_port, settings.resolved_milvus_uri
    paths = _Paths(Path(settings.data_dir).resolve())
    if _answers(port):
        _check_ours(paths, port)
        return uri
    paths.root.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(paths.lock, timeout=timeout + STOP_TIMEOUT):
        if _answers(port):  # another process started it while we waited for the lock
            _check_ours(paths, port)
            return uri
        pid = _read_pid(paths.pid)
        if pid is not None and _server_alive(pid):
            # Left by a starter that died mid-wait, or still recovering a large write-ahead log.
            _check_port(paths, pid, port)
            _wait_until_answering(paths, port, pid, timeout)
        else:
            _start_server(paths, port, timeout)
    return uri


def stop_vector_store(settings: Settings | None = None, *, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the embedded milvus-lite server; return whether one was running.

    The server gets SIGTERM and shuts down gracefully (flushing unsealed rows); it is killed if it has
    not exited after ``timeout`` seconds. Does nothing when ``STACKYARD_MILVUS_URI`` points elsewhere.
    """
    settings = settings or get_settings()
    paths = _Paths(Path(settings.data_dir).resolve())
    if not settings.embedded_milvus or not paths.root.is_dir():
        return False
    with _exclusive_lock(paths.lock, timeout=START_TIMEOUT + timeout):
        pid = _read_pid(paths.pid)
        running = pid is not None and _server_alive(pid)
        if running:
            _terminate(pid, timeout)
        paths.pid.unlink(missing_ok=True)
        return running


def milvus_document_store(collection_name: str, settings: Settings | None = None, **kwargs: Any) -> MilvusDocumentStore:
    """A ``MilvusDocumentStore`` on the configured URI (starting milvus-lite if needed).

    ``kwargs`` go to ``MilvusDocumentStore``; extra ``connection_args`` (e.g. a token) are kept, the
    URI always comes from settings. Consistency defaults to ``"Strong"`` so a run sees rows another
    process wrote just before, on a Milvus cluster too (milvus-lite reads its memtable either way).
    """
    from milvus_haystack import MilvusDocumentStore

    uri = ensure_vector_store(settings)
    connection_args = {**(kwargs.pop("connection_args", None) or {}), "uri": uri}
    kwargs.setdefault("consistency_level", "Strong")
    return MilvusDocumentStore(collection_name=collection_name, connection_args=connection_args, **kwargs)


def vector_store_running(settings: Settings | None = None) -> bool:
    """Whether the vector store can be asked without starting it: the embedded milvus-lite answers, or the
    store is a server elsewhere (``STACKYARD_MILVUS_URI``). Clean-ups ask this first: they must not start one."""
    settings = settings or get_settings()
    return not settings.embedded_milvus or _answers(settings.milvus_lite_port)


def list_collections(settings: Settings | None = None, *, timeout: float = 10.0) -> list[str]:
    """The collections the configured vector store holds, sorted (the editor offers them for a store's
    collection); starts milvus-lite if it is not running, as building a store would."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=ensure_vector_store(settings), timeout=timeout)
    try:
        return sorted(client.list_collections())
    finally:
        client.close()


def has_collection(name: str, settings: Settings | None = None, *, timeout: float = 10.0) -> bool:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=ensure_vector_store(settings), timeout=timeout)
    try:
        return client.has_collection(name)
    finally:
        client.close()


def drop_collection(name: str, settings: Settings | None = None, *, timeout: float = 10.0) -> bool:
    """Drop collection ``name`` from the configured vector store; whether it was there."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=ensure_vector_store(settings), timeout=timeout)
    try:
        if not client.has_collection(name):
            return False
        client.drop_collection(name)
        return True
    finally:
        client.close()


def flush_documents(store: MilvusDocumentStore) -> None:
    """Seal the rows written so far into indexed segments.

    Rows are searchable without it, but milvus-lite searches unsealed rows by brute force (1k rows of
    384 dims: ~30 ms before a flush, ~3 ms after). Call it once after an ingestion run, not per batch:
    Milvus rate-limits flushes and each one makes a small segment.
    """
    if store.client.has_collection(store.collection_name):
        store.client.flush(store.collection_name)


# ── server process ────────────────────────────────────────────────────────────────────────────────


def _start_server(paths: _Paths, port: int, timeout: float) -> None:
    paths.data.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-P", str(_SERVER_SCRIPT), "--data-dir", str(paths.data), "--host", _HOST, "--port", str(port)]
    with open(paths.log, "ab") as log:
        log.write(f"--- stackyard: starting milvus-lite on {_HOST}:{port} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=paths.root, start_new_session=True,  # outlives this process and its terminal's signals
        )
    _children[process.pid] = process
    paths.pid.write_text(f"{process.pid}\n")
    try:
        _wait_until_answering(paths, port, process.pid, timeout)
    except BaseException:
        _terminate(process.pid, STOP_TIMEOUT)
        paths.pid.unlink(missing_ok=True)
        raise


def _wait_until_answering(paths: _Paths, port: int, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if not _server_alive(pid):
            raise VectorStoreUnavailable(
                f"milvus-lite (pid {pid}) exited before answering on {_HOST}:{port}. "
                f"Its log {paths.log} ends with:\n{_tail(paths.log)}\n"
                "If another process holds the port or the data directory, stop it, or set "
                "STACKYARD_MILVUS_LITE_PORT / STACKYARD_DATA_DIR; STACKYARD_MILVUS_URI uses an external Milvus."
            )
        if time.monotonic() > deadline:
            raise VectorStoreUnavailable(
                f"milvus-lite (pid {pid}) did not answer on {_HOST}:{port} within {timeout:.0f} s; "
                f"see {paths.log}."
            )
        time.sleep(0.05)


def _check_ours(paths: _Paths, port: int) -> None:
    """Refuse a port answered by something other than this data directory's server.

    Without this, two Stackyard installs on the default port would silently share one store.
    """
    pid = _read_pid(paths.pid)
    if pid is None or not _server_alive(pid):
        raise VectorStoreUnavailable(
            f"{_HOST}:{port} is answered by a process that is not the milvus-lite server of {paths.root}. "
            "Set STACKYARD_MILVUS_LITE_PORT to a free port, or STACKYARD_MILVUS_URI to use that server."
        )


def _check_port(paths: _Paths, pid: int, port: int) -> None:
    """Fail fast when this data directory's server listens on another port (the setting changed)."""
    with contextlib.suppress(OSError):
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"--port" in args and str(port).encode() not in args:
            raise VectorStoreUnavailable(
                f"milvus-lite (pid {pid}) already serves {paths.data} on another port than {port}. "
                "Stop it first (nodes.stores.stop_vector_store), or set STACKYARD_MILVUS_LITE_PORT back."
            )


def _terminate(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_exit(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_exit(pid, 5.0)
    _children.pop(pid, None)


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _server_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _server_alive(pid: int) -> bool:
    """Whether ``pid`` is a running milvus-lite server (not a zombie, not a recycled pid)."""
    if pid in _children:
        return _children[pid].poll() is None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no procfs (macOS): trust the pid file
        return True
    try:
        state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    # A zombie has an empty command line; so has a process still inside exec (a vforked child
    # reports it for a moment after Popen returns): that one is starting, count it as alive.
    return state not in ("Z", "X") and (not cmdline or b"milvus_lite" in cmdline)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def _exclusive_lock(path: Path, *, timeout: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise VectorStoreUnavailable(
                        f"Another process has held {path} for over {timeout:.0f} s while starting or stopping "
                        "milvus-lite; if it hangs, stop it."
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
