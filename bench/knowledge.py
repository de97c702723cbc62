"""Knowledge bases (#19): indexing throughput against a hand-written loop, and retrieval-test latency at scale.

    ingest ratio = chunks/s indexing files through a knowledge base (``knowledge.indexing.index_document``, the
                   function the worker task runs, here in this process) / chunks/s of a hand-written loop over
                   the same files (TextFileToDocument → the same RecursiveDocumentSplitter → the same MiniLM →
                   MilvusDocumentStore.write_documents), interleaved A/B/A/B. Target ≥ 0.9.
                   Both sides write to a store with the base's parameters (dense + the BM25 sparse field), so
                   the ratio is the base's own overhead; the hand loop into a dense-only store is printed too, to
                   show what the BM25 field costs at insert.
    retrieval    = ``knowledge.search.retrieve`` (what POST /knowledge-bases/{name}/query and a workflow's
                   retriever run: MiniLM on the query, then Milvus), top-10 over N chunks in milvus-lite;
                   p50/p95 over distinct queries after a warm-up, dense, keyword and hybrid. Target p95 < 150 ms
                   at 50,000 chunks, dense and hybrid. The chunks get random unit vectors and a few words (the
                   search costs the same); embedding 50,000 real chunks would take this machine ~10 minutes.
    re-index     = a base of --reindex-chunks real chunks (20 words each, MiniLM) is re-indexed with 25-word
                   chunks while another thread asks a query whose answer is a known chunk, without pause; prints
                   how many answers came back right from each generation, any failure, and the slowest answer.

Run: `make bench` or `.venv/bin/python bench/knowledge.py [--files 40] [--chunks 50000] [--queries 200]
[--reindex-chunks 10000]`.
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


def hand_loop(folder: Path, collection: str, *, bm25: bool = True) -> tuple[int, float]:
    from haystack.components.converters import TextFileToDocument
    from haystack.components.preprocessors import RecursiveDocumentSplitter
    from haystack.document_stores.types import DuplicatePolicy
    from milvus_haystack.function import BM25BuiltInFunction

    from knowledge.search import BM25_FUNCTION, SPARSE_FIELD, TEXT_FIELD, document_embedder
    from knowledge.settings import Chunking
    from nodes.stores import milvus_document_store
    from stackyard.settings import get_settings

    chunking = Chunking()
    embedder = document_embedder("sentence-transformers/all-MiniLM-L6-v2", get_settings())
    sparse = {"text_field": TEXT_FIELD, "sparse_vector_field": SPARSE_FIELD,
              "builtin_function": [BM25BuiltInFunction.from_dict(BM25_FUNCTION)]} if bm25 else {}
    store = milvus_document_store(collection, **sparse)
    started, written = time.perf_counter(), 0
    for path in sorted(folder.iterdir()):
        documents = TextFileToDocument().run(sources=[path])["documents"]
        splitter = RecursiveDocumentSplitter(split_length=chunking.length, split_overlap=chunking.overlap,
                                             split_unit=chunking.unit, separators=list(chunking.separators))
        chunks = splitter.run(documents=documents)["documents"]
        for chunk in chunks:
            chunk.meta["file_name"] = path.name
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


def retrieval(chunks: int, queries: int) -> tuple[dict[str, tuple[float, float]], int]:
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
        store.write_documents([Document(id=f"c{start + i}", embedding=v.tolist(),
                                        content=" ".join(WORDS[(start + i + n) % len(WORDS)] + str((start + i) % 500)
                                                         for n in range(8)),
                                        meta={"kb_document_id": "bench", "position": start + i})
                               for i, v in enumerate(vectors)])
    flush_documents(store)
    figures = {}
    for mode in ("dense", "keyword", "hybrid"):
        for warm in range(5):
            search.retrieve(base, f"warm-up question {warm}", settings, mode=mode, top_k=10)
        took = []
        for index in range(queries):
            started = time.perf_counter()
            hits = search.retrieve(base, f"where is {WORDS[index % len(WORDS)]}{index % 500}?", settings, mode=mode,
                                   top_k=10)
            took.append((time.perf_counter() - started) * 1000)
            assert len(hits) == 10 or (mode == "keyword" and hits), (mode, len(hits))   # BM25: only matching chunks
        took.sort()
        figures[mode] = (statistics.median(took), took[int(len(took) * 0.95) - 1])
    return figures, store.count_documents()


def reindex_while_asking(chunks: int) -> str:
    """Re-index a base of ``chunks`` 20-word chunks into 25-word ones while a thread keeps asking."""
    import threading

    from knowledge import bases, generations, search
    from knowledge.documents import text_source
    from knowledge.indexing import index_document
    from knowledge.settings import Chunking
    from stackyard.settings import get_settings
    from store.db import session_scope

    settings = get_settings()
    per_document = 200
    texts = [" ".join(f"{WORDS[(d + n) % len(WORDS)]}{d}x{n}" for n in range(per_document * 20))
             for d in range(max(1, chunks // per_document))]
    texts[0] = "The secret vault code is 4242. " + texts[0]
    with session_scope() as session:
        base = bases.create(session, settings, name="reindex", chunking=Chunking(length=20, overlap=0))
        ids = [d.id for d in bases.add_documents(session, base, [text_source(f"d{i}", t) for i, t in
                                                                 enumerate(texts)]).added]
    started = time.perf_counter()
    for document_id in ids:
        index_document(document_id)
    first = time.perf_counter() - started
    answers: dict[int, int] = {}
    wrong, failures, slowest = 0, [], 0.0
    stop = threading.Event()

    def ask() -> None:
        nonlocal wrong, slowest
        while not stop.is_set():
            began = time.perf_counter()
            try:
                with session_scope() as session:
                    current = bases.get(session, "reindex")
                    session.expunge(current)
                hits = search.retrieve(current, "4242", settings, mode="keyword", top_k=1)
                if hits and "4242" in hits[0].text:
                    answers[current.generation] = answers.get(current.generation, 0) + 1
                else:
                    wrong += 1
            except Exception as exc:  # noqa: BLE001 - counted and shown
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
            slowest = max(slowest, time.perf_counter() - began)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    started = time.perf_counter()
    with session_scope() as session:
        again = generations.start(session, bases.get(session, "reindex"), settings,
                                  chunking=Chunking(length=25, overlap=0))
    for document_id in again:
        index_document(document_id)
    took = time.perf_counter() - started
    time.sleep(1.0)                       # a few answers from the new generation
    stop.set()
    asker.join()
    with session_scope() as session:
        counted = bases.get(session, "reindex")
        total = search.document_store(counted, settings).count_documents()
    return (f"re-index: {len(ids) * per_document:,} chunks of 20 words indexed in {first:.0f} s; re-indexed into "
            f"{total:,} chunks of 25 in {took:.0f} s while a thread asked: answers right from generation 1: "
            f"{answers.get(1, 0)}, from generation 2: {answers.get(2, 0)}, wrong: {wrong}, failed: {len(failures)} "
            f"{failures[:2]}; slowest answer {slowest * 1000:.0f} ms; serving generation {counted.generation}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--reindex-chunks", type=int, default=10_000)
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
        rates: dict[str, list[float]] = {"hand": [], "base": [], "dense-only": []}
        for round_ in range(2):
            chunks, seconds = hand_loop(data / "files" / "corpus", f"hand_{round_}")
            rates["hand"].append(chunks / seconds)
            chunks, seconds = through_a_base(data / "files" / "corpus", f"base-{round_}")
            rates["base"].append(chunks / seconds)
            chunks, seconds = hand_loop(data / "files" / "corpus", f"dense_{round_}", bm25=False)
            rates["dense-only"].append(chunks / seconds)
        hand, base, dense = (statistics.mean(rates[k]) for k in ("hand", "base", "dense-only"))
        print(f"ingest: {args.files} files, {chunks} chunks; knowledge base {base:.1f} chunks/s, hand-written loop "
              f"{hand:.1f} chunks/s; ratio {base / hand:.2f} (target >= 0.9); the hand loop into a dense-only store "
              f"{dense:.1f} chunks/s (BM25 field costs {100 * (1 - hand / dense):.0f} %)")
        figures, count = retrieval(args.chunks, args.queries)
        for mode, (p50, p95) in figures.items():
            print(f"retrieval test, {mode}, top-10 over {count:,} chunks in milvus-lite: p50 {p50:.1f} ms, "
                  f"p95 {p95:.1f} ms over {args.queries} queries (target p95 < 150 ms)")
        if args.reindex_chunks:
            print(reindex_while_asking(args.reindex_chunks))
    finally:
        stop_vector_store()


if __name__ == "__main__":
    main()
