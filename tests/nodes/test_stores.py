"""One vector store for many processes: the embedded milvus-lite server, or an external Milvus URI.

The multi-process tests run real Python processes against a real milvus-lite server on a free port;
every server is stopped by the fixture, which also fails the test if any other one was left behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from haystack import Document

from nodes import stores
from nodes.stores import (
    VectorStoreUnavailable,
    ensure_vector_store,
    flush_documents,
    milvus_document_store,
    stop_vector_store,
)
from stackyard.settings import Settings, get_settings, reset_settings_cache

REPO = Path(__file__).resolve().parents[2]

# Shared by the writer and reader scripts: a distinct, reproducible 8-dim vector per document.
_VECTOR = """
import random
def vector(tag, i):
    rng = random.Random(f"{tag}-{i}")
    return [rng.random() for _ in range(8)]
"""

_ENSURE = """
import sys
from nodes.stores import ensure_vector_store
print("ready", flush=True)
sys.stdin.readline()
print(ensure_vector_store(), flush=True)
"""

_WRITE = _VECTOR + """
import sys
from haystack import Document
from haystack.components.writers import DocumentWriter
from nodes.stores import milvus_document_store
tag, n = sys.argv[1], int(sys.argv[2])
writer = DocumentWriter(document_store=milvus_document_store("shared"))
print("ready", flush=True)
sys.stdin.readline()
for start in range(0, n, 25):
    docs = [Document(id=f"{tag}-{i}", content=f"{tag} says {i}", embedding=vector(tag, i), meta={"writer": tag})
            for i in range(start, min(n, start + 25))]
    writer.run(documents=docs)
print("wrote", n, flush=True)
"""

_READ = _VECTOR + """
import json, sys
from milvus_haystack import MilvusEmbeddingRetriever
from nodes.stores import milvus_document_store
store = milvus_document_store("shared")
retriever = MilvusEmbeddingRetriever(document_store=store, top_k=1)
probes = sys.argv[1:]
hits = {p: retriever.run(query_embedding=vector(*p.rsplit("-", 1)))["documents"][0].id for p in probes}
by_writer = {w: len(store.filter_documents({"field": "meta.writer", "operator": "==", "value": w})) for w in "AB"}
print(json.dumps({"count": store.count_documents(), "ids": sorted(d.id for d in store.filter_documents()),
                  "hits": hits, "by_writer": by_writer}))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _servers_of(data_dir: Path) -> list[int]:
    """Pids of milvus-lite processes serving ``data_dir`` (their command line names it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"milvus_lite" in cmdline and str(data_dir / "milvus").encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for an embedded milvus-lite on a free port; its server is stopped afterwards."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("STACKYARD_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STACKYARD_MILVUS_LITE_PORT", str(_free_port()))
    monkeypatch.delenv("STACKYARD_MILVUS_URI", raising=False)
    reset_settings_cache()
    settings = get_settings()
    yield settings
    stop_vector_store(settings)
    strays = _servers_of(data_dir.resolve())
    for pid in strays:
        os.kill(pid, signal.SIGKILL)
    reset_settings_cache()
    assert not strays, f"milvus-lite processes left running after stop_vector_store: {strays}"


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", HAYSTACK_TELEMETRY_ENABLED="False")
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=REPO, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _release_together(processes: list[subprocess.Popen[str]]) -> None:
    """Wait until every process has imported what it needs, then let them all go at once."""
    for process in processes:
        line = process.stdout.readline()
        assert line.strip() == "ready", f"got {line!r}; stderr:\n{process.stderr.read()}"
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()


def _finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=60)
    assert "Open local milvus failed" not in err
    assert process.returncode == 0, err[-3000:]
    return out


# ── no server to manage ─────────────────────────────────────────────────────────────────────────────


def test_external_uri_is_used_as_given_and_nothing_starts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", milvus_uri="http://milvus.internal:19530")

    assert ensure_vector_store(settings) == "http://milvus.internal:19530"
    assert stop_vector_store(settings) is False
    assert not (tmp_path / "data").exists()


def test_port_answered_by_a_stranger_is_refused(embedded: Settings) -> None:
    with socket.create_server(("127.0.0.1", embedded.milvus_lite_port)):
        with pytest.raises(VectorStoreUnavailable, match="STACKYARD_MILVUS_LITE_PORT"):
            ensure_vector_store(embedded)
    assert not (embedded.data_dir / "milvus-lite.pid").exists()


# ── the embedded server ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.integration
def test_server_that_cannot_start_names_its_log(embedded: Settings) -> None:
    # Hold milvus-lite's own data-directory lock, as a server left over from another port would.
    lock_path = embedded.data_dir / "milvus" / "LOCK"
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(VectorStoreUnavailable) as caught:
            ensure_vector_store(embedded, timeout=30)

    message = str(caught.value)
    assert str(embedded.data_dir.resolve() / "milvus-lite.log") in message
    assert "another process holds the lock" in message
    assert not (embedded.data_dir / "milvus-lite.pid").exists()


@pytest.mark.integration
def test_started_once_then_reused_then_stopped(embedded: Settings) -> None:
    port = embedded.milvus_lite_port

    uri = ensure_vector_store(embedded)
    pid = int((embedded.data_dir / "milvus-lite.pid").read_text())
    assert ensure_vector_store(embedded) == uri == f"http://127.0.0.1:{port}"
    assert _servers_of(embedded.data_dir.resolve()) == [pid]
    assert (embedded.data_dir / "milvus-lite.log").read_text().count("stackyard: starting milvus-lite") == 1

    store = milvus_document_store("reuse", embedded)
    assert store.connection_args["uri"] == uri
    assert store.consistency_level == "Strong"
    flush_documents(store)  # no collection yet: nothing to do
    store.write_documents([Document(id="one", content="one", embedding=[0.5] * 8)])
    flush_documents(store)
    assert store.count_documents() == 1

    assert stop_vector_store(embedded) is True
    assert not _answers(port)
    assert not (embedded.data_dir / "milvus-lite.pid").exists()
    assert stop_vector_store(embedded) is False


@pytest.mark.integration
def test_changed_port_while_the_old_server_runs_fails_fast(embedded: Settings) -> None:
    ensure_vector_store(embedded)
    moved = embedded.model_copy(update={"milvus_lite_port": _free_port()})

    with pytest.raises(VectorStoreUnavailable, match="another port"):
        ensure_vector_store(moved, timeout=30)
    assert stop_vector_store(moved) is True  # the pid file, not the port, finds the server


@pytest.mark.integration
def test_a_server_still_starting_is_waited_for_not_duplicated(embedded: Settings) -> None:
    # As left by a starter that died after spawning it: pid file written, port not answering yet.
    data_dir = embedded.data_dir.resolve()
    (data_dir / "milvus").mkdir(parents=True)
    server = subprocess.Popen(
        [sys.executable, "-P", str(stores._SERVER_SCRIPT), "--data-dir", str(data_dir / "milvus"),
         "--host", "127.0.0.1", "--port", str(embedded.milvus_lite_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        (data_dir / "milvus-lite.pid").write_text(f"{server.pid}\n")
        assert ensure_vector_store(embedded) == embedded.resolved_milvus_uri
        assert _servers_of(data_dir) == [server.pid]
        assert not (data_dir / "milvus-lite.log").exists()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:  # under load a server still starting can be slow to shut down
            server.kill()
            server.wait(timeout=10)


@pytest.mark.integration
def test_embedded_server_accepts_repeated_schema_setup_like_milvus(embedded: Settings) -> None:
    # Milvus answers a repeated identical create_collection/create_index with success; stock
    # milvus-lite does not, which made two first writers into a new collection fail.
    from pymilvus import DataType, MilvusClient, MilvusException

    client = MilvusClient(uri=ensure_vector_store(embedded))
    try:
        def schema(dim: int):
            schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            return schema

        def index(index_type: str, metric: str):
            params = client.prepare_index_params()
            params.add_index(field_name="vector", index_type=index_type, metric_type=metric, params={})
            return params

        client.create_collection("twice", schema=schema(8))
        client.create_collection("twice", schema=schema(8))
        with pytest.raises(MilvusException, match="already exists"):
            client.create_collection("twice", schema=schema(16))

        client.create_index("twice", index("AUTOINDEX", "L2"))
        client.create_index("twice", index("AUTOINDEX", "L2"))
        with pytest.raises(MilvusException, match="already exists"):
            client.create_index("twice", index("FLAT", "COSINE"))
    finally:
        client.close()


@pytest.mark.integration
def test_processes_racing_to_start_start_exactly_one_server(embedded: Settings) -> None:
    racers = [_spawn(_ENSURE) for _ in range(3)]
    _release_together(racers)
    uris = {_finish(racer).strip() for racer in racers}

    assert uris == {embedded.resolved_milvus_uri}
    log = (embedded.data_dir / "milvus-lite.log").read_text()
    assert log.count("stackyard: starting milvus-lite") == 1
    pid = int((embedded.data_dir / "milvus-lite.pid").read_text())
    assert _servers_of(embedded.data_dir.resolve()) == [pid]


@pytest.mark.integration
@pytest.mark.integration
@pytest.mark.slow
def test_two_writer_processes_and_a_reader_share_one_store(embedded: Settings) -> None:
    # Neither writer finds a server: they race to start it, then write into a new collection together.
    writers = [_spawn(_WRITE, tag, "100") for tag in "AB"]
    _release_together(writers)
    for writer in writers:
        assert "wrote 100" in _finish(writer)

    probes = ["A-7", "B-93"]
    expected_ids = sorted(f"{tag}-{i}" for tag in "AB" for i in range(100))
    seen = json.loads(_finish(_spawn(_READ, *probes)))
    assert seen["count"] == 200
    assert seen["ids"] == expected_ids
    assert seen["by_writer"] == {"A": 100, "B": 100}
    assert seen["hits"] == {probe: probe for probe in probes}
    assert (embedded.data_dir / "milvus-lite.log").read_text().count("stackyard: starting milvus-lite") == 1

    # After a graceful stop, the next process starts a fresh server that finds every row on disk.
    assert stop_vector_store(embedded) is True
    again = json.loads(_finish(_spawn(_READ, *probes)))
    assert again["count"] == 200
    assert again["hits"] == {probe: probe for probe in probes}


@pytest.mark.integration
@pytest.mark.slow
def test_idle_clients_keepalive_pings_are_accepted(embedded: Settings):
    """A warm worker's connection sits idle between runs while its client pings, as Milvus permits."""
    import threading
    import time

    import grpc
    from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

    port = int(ensure_vector_store(embedded).rsplit(":", 1)[1])
    states: list[grpc.ChannelConnectivity] = []
    ready = threading.Event()

    def seen(state: grpc.ChannelConnectivity) -> None:
        states.append(state)
        if state is grpc.ChannelConnectivity.READY:
            ready.set()

    # pymilvus pings every 10 s; 5.5 s gets the third ping (grpcio's default GOAWAY point) in under 17 s.
    options = [("grpc.keepalive_time_ms", 5500), ("grpc.keepalive_permit_without_calls", 1),
               ("grpc.http2.max_pings_without_data", 0)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        channel.subscribe(seen, try_to_connect=True)
        assert ready.wait(10)
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        stub.ShowCollections(milvus_pb2.ShowCollectionsRequest(), timeout=10)
        time.sleep(18)
        after = states[states.index(grpc.ChannelConnectivity.READY) + 1:]
        assert after == [], f"the server dropped an idle, pinging client: {after}"
        stub.ShowCollections(milvus_pb2.ShowCollectionsRequest(), timeout=10)
