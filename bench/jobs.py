"""P5 and P3: batch jobs on real processes (Redis + PostgreSQL, `stackyard web` + `stackyard worker`).

    P5 = time of a 1,000-item job with 1 worker / with 2 workers (prompt → tiny local LLM per item).
         Target ≥ 1.7 on 2 cores.
    P3 = ingest docs/s through a job over a folder (one item per file, 2 workers) / docs/s of a
         hand-written loop in this process (read → same splitter → SentenceTransformer.encode, batches of
         32 → pymilvus insert, batches of 256) over the same files into the same milvus-lite server.
         Target ≥ 0.9.

Job time is the server's: created_at → finished_at. Workers run one torch thread each
(OMP_NUM_THREADS=1: two processes on two cores; idle OpenMP threads spin and starve the database);
the hand-written loop keeps torch's default (every core). Each worker is warmed with a small job first.
Run: `make bench` or `.venv/bin/python bench/jobs.py [--items 1000] [--tokens 40] [--files 120]`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import redis_postgres_stack, run_job  # noqa: E402

from tests.support.models import build_tiny_chat_model  # noqa: E402
from tests.support.specs import chat, ingest  # noqa: E402
from tests.support.stack import Stack, model_paths_env  # noqa: E402

TINY = "bench/tiny-chat"
WORDS = "amber basalt cedar delta ember fjord garnet harbor indigo juniper kelp lichen".split()
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def questions(count: int) -> dict:
    return {"type": "csv", "data": "question\n" + "".join(f"question number {i}\n" for i in range(count))}


def start_workers(stack: Stack, count: int, first: int) -> list:
    return [stack.start_worker(name=f"bench-worker-{first + i}", **WORKER_ENV) for i in range(count)]


def p5(stack: Stack, items: int) -> tuple[float, float]:
    times = []
    for count in (1, 2):
        procs = start_workers(stack, count, first=count * 10)
        run_job(stack, {"workflow": "llm", "source": questions(8 * count), "concurrency": 2 * count})  # warm every worker
        times.append(run_job(stack, {"workflow": "llm", "source": questions(items), "concurrency": 4})["seconds"])
        for proc in procs:
            stack.kill(proc, signal.SIGTERM)
    return times[0], times[1]


def write_corpus(folder: Path, files: int, words: int = 450) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        text = " ".join(f"{WORDS[(index * 5 + n) % len(WORDS)]}{index}x{n % 40}" for n in range(words))
        (folder / f"doc{index:04d}.txt").write_text(text)


def hand_loop(folder: Path, stack: Stack) -> tuple[int, float]:
    """Read → split → encode → insert, written by hand; returns (documents, seconds)."""
    import yaml
    from haystack.components.converters import TextFileToDocument
    from haystack.components.preprocessors import RecursiveDocumentSplitter
    from pymilvus import DataType, MilvusClient
    from sentence_transformers import SentenceTransformer

    from stackyard.settings import Settings
    from workflows.templates import template_path

    settings = Settings(data_dir=stack.data_dir, milvus_lite_port=stack.milvus_port)
    model = SentenceTransformer(settings.local_model_path("sentence-transformers/all-MiniLM-L6-v2"), device="cpu")
    client = MilvusClient(uri=settings.resolved_milvus_uri)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=384)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)
    index = client.prepare_index_params()
    index.add_index("vector", metric_type="L2", index_type="AUTOINDEX")
    client.create_collection("hand_loop", schema=schema, index_params=index, consistency_level="Strong")
    params = yaml.safe_load(template_path("ingest").read_text())["components"]["splitter"]["init_parameters"]
    splitter = RecursiveDocumentSplitter(**params)
    splitter.warm_up()
    model.encode(["warm up"])
    start = time.perf_counter()
    docs = TextFileToDocument().run(sources=sorted(folder.iterdir()))["documents"]
    chunks = splitter.run(documents=docs)["documents"]
    vectors = model.encode([c.content for c in chunks], batch_size=32)
    rows = [{"id": c.id, "vector": v.tolist(), "text": c.content} for c, v in zip(chunks, vectors)]
    for begin in range(0, len(rows), 256):
        client.upsert("hand_loop", rows[begin:begin + 256])
    seconds = time.perf_counter() - start
    client.close()
    return len(rows), seconds


def p3(stack: Stack, files: int) -> tuple[float, float, int, int]:
    folder = stack.files_root / "bench"
    write_corpus(folder, files)
    write_corpus(stack.files_root / "warm", 6)
    procs = start_workers(stack, 2, first=30)
    run_job(stack, {"workflow": "ingest", "source": {"type": "files", "paths": ["warm"]}, "concurrency": 2})
    job = run_job(stack, {"workflow": "ingest", "source": {"type": "files", "paths": ["bench"]}, "concurrency": 4})
    for proc in procs:
        stack.kill(proc, signal.SIGTERM)
    documents, seconds = hand_loop(folder, stack)
    return job["documents_written"] / job["seconds"], documents / seconds, job["documents_written"], documents


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=40, help="tokens each item's LLM call generates")
    parser.add_argument("--files", type=int, default=120)
    args = parser.parse_args()
    model = build_tiny_chat_model(Path(tempfile.mkdtemp(prefix="stackyard-tiny-")))
    with redis_postgres_stack("p5-p3", redis_db=14, extra_env=model_paths_env({TINY: model})) as stack:
        stack.start_web()
        stack.create("llm", chat(TINY, tokens=args.tokens))
        stack.create("ingest", ingest("bench_job"))
        one, two = p5(stack, args.items)
        print(f"P5  {args.items}-item job, prompt → tiny local LLM ({args.tokens} tokens), concurrency 4, 2 cores")
        print(f"    1 worker                    {one:.1f} s  ({args.items / one:.1f} items/s)")
        print(f"    2 workers                   {two:.1f} s  ({args.items / two:.1f} items/s)")
        print(f"    P5 = 1 worker / 2 workers   {one / two:.2f} (target ≥ 1.7)")
        job_rate, hand_rate, job_docs, hand_docs = p3(stack, args.files)
        print(f"P3  ingest {args.files} text files (~450 words each), MiniLM on CPU, milvus-lite")
        print(f"    job, 2 workers              {job_rate:.1f} docs/s  ({job_docs} documents)")
        print(f"    hand-written loop           {hand_rate:.1f} docs/s  ({hand_docs} documents)")
        print(f"    P3 = job / hand loop        {job_rate / hand_rate:.2f} (target ≥ 0.9)")


if __name__ == "__main__":
    main()
