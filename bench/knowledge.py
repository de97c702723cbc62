"""Knowledge bases (#19): indexing throughput against a hand-written loop, and retrieval-test latency at scale.

    ingest ratio = chunks/s indexing files through a knowledge base (``knowledge.indexing.index_document``, the
                   function the worker task runs, here in this process) / chunks/s of a hand-written loop over
                   the same files (TextFileToDocument → the same RecursiveDocumentSplitter → the same MiniLM →
                   MilvusDocumentStore.write_documents), interleaved A/B/A/B. Target ≥ 0.9.
    retrieval    = ``knowledge.search.retrieve`` (what POST /knowledge-bases/{name}/query and a workflow's
                   retriever run: MiniLM on the query, then Milvus), top-10 over N chunks in milvus-lite;
                   p50/p95 over distinct queries after a warm-up. Target p95 < 150 ms at 50,000 chunks, dense.
                   The chunks get random unit vectors (the search costs the same); embedding 50,000 real
                   chunks would take this machine ~10 minutes.

Run: `make bench` or `.venv/bin/python bench/knowledge.py [--files 40] [--chunks 50000] [--queries 200]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT  # noqa: E402,F401 - puts the project on sys.path

from tests.support.stack import free_port  # noqa: E402

WORDS = "amber basalt cedar delta ember fjord garnet harbor indigo juniper kelp lichen".split()


def corpus(folder: Path, files: int, words: int = 400) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        text = " ".join(f"{WORDS[(index * 5 + n) % len(WORDS)]}{index}-{n % 97}" for n in range(words))
        (folder / f"doc{index:03d}.txt").write_text(text)


def hand_loop(folder: Path, collection: str) -> tuple[int, float]:
    from haystack.components.converters import TextFileToDocument
    from haystack.components.preprocessors import RecursiveDocumentSplitter
    from haystack.document_stores.types import DuplicatePolicy

    from knowledge.search import document_embedder
    from knowledge.settings import Chunking
    from nodes.stores import milvus_document_store
    from stackyard.settings import get_settings

    chunking = Chunking()
    embedder = document_embedder("sentence-transformers/all-MiniLM-L6-v2", get_settings())
    store = milvus_document_store(collection)
    started, written = time.perf_counter(), 0
    for path in sorted(folder.iterdir()):
        documents = TextFileToDocument().run(sources=[path])["documents"]
        splitter = RecursiveDocumentSplitter(split_length=chunking.length, split_overlap=chunking.overlap,
                                             split_unit=chunking.unit, separators=list(chunking.separators))
        chunks = splitter.run(documents=documents)["documents"]
        for chunk in chunks:
            chunk.meta = {"file_name": path.name}
        written += store.write_documents(embedder.run(documents=chunks)["documents"], policy=DuplicatePolicy.OVERWRITE)
    return written, time.perf_counter() - started


def through_a_base(folder: Path, name: str) -> tuple[int, float]:
    from knowledge import bases
    from knowledge.documents import file_sources
    from knowledge.indexing import index_document
    from knowledge.models import KbDocument
    from stackyard.settings import get_settings
    from store.db import session_scope

    started = time.perf_counter()
    with session_scope() as session:
        base = bases.create(session, get_settings(), name=name)
        ids = [d.id for d in bases.add_documents(session, base, file_sources([folder.name])).added]
    for document_id in ids:
        assert index_document(document_id).value == "done"
    elapsed = time.perf_counter() - started
    with session_scope() as session:
        return sum(session.get(KbDocument, i).chunk_count for i in ids), elapsed


def retrieval(chunks: int, queries: int) -> tuple[float, float, int]:
    import numpy as np
    from haystack import Document

    from knowledge import bases, search
    from nodes.stores import flush_documents
    from stackyard.settings import get_settings
    from store.db import session_scope

    settings = get_settings()
    with session_scope() as session:
        base = bases.create(session, settings, name="scale")
        session.expunge(base)
    store = search.document_store(base, settings)
    rng = np.random.default_rng(7)
    for start in range(0, chunks, 2000):
        vectors = rng.normal(size=(min(2000, chunks - start), 384)).astype("float32")
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.write_documents([Document(id=f"c{start + i}", content=f"chunk {start + i}", embedding=v.tolist(),
                                        meta={"kb_document_id": "bench", "position": start + i})
                               for i, v in enumerate(vectors)])
    flush_documents(store)
    for warm in range(5):
        search.retrieve(base, f"warm-up question {warm}", settings, top_k=10)
    took = []
    for index in range(queries):
        started = time.perf_counter()
        hits = search.retrieve(base, f"where is the {WORDS[index % len(WORDS)]} number {index}?", settings, top_k=10)
        took.append((time.perf_counter() - started) * 1000)
        assert len(hits) == 10
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.95) - 1], store.count_documents()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="stackyard-bench-knowledge-"))
    os.environ.update({"STACKYARD_DATA_DIR": str(data), "STACKYARD_MILVUS_LITE_PORT": str(free_port())})
    os.environ.pop("STACKYARD_DATABASE_URL", None)
    from nodes.stores import ensure_vector_store, stop_vector_store
    from store.db import migrate

    migrate()
    ensure_vector_store()
    try:
        corpus(data / "files" / "corpus", args.files)
        hand_loop(data / "files" / "corpus", "warm")          # loads MiniLM once for both sides
        rates: dict[str, list[float]] = {"hand": [], "base": []}
        for round_ in range(2):
            chunks, seconds = hand_loop(data / "files" / "corpus", f"hand_{round_}")
            rates["hand"].append(chunks / seconds)
            chunks, seconds = through_a_base(data / "files" / "corpus", f"base-{round_}")
            rates["base"].append(chunks / seconds)
        hand, base = statistics.mean(rates["hand"]), statistics.mean(rates["base"])
        print(f"ingest: {args.files} files, {chunks} chunks; knowledge base {base:.1f} chunks/s, hand-written loop "
              f"{hand:.1f} chunks/s; ratio {base / hand:.2f} (target >= 0.9)")
        p50, p95, count = retrieval(args.chunks, args.queries)
        print(f"retrieval test, dense, top-10 over {count:,} chunks in milvus-lite: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
              f"over {args.queries} queries (target p95 < 150 ms); hybrid: not built yet")
    finally:
        stop_vector_store()


if __name__ == "__main__":
    main()
