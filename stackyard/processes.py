"""Long-running processes: ``stackyard web``, ``stackyard worker`` and ``stackyard up`` (both, embedded)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

# How Stackyard starts its own processes: the same entry as the `stackyard` console script. In probes that
# alternated worker and direct runs of a tiny-model workflow, a worker started as `python -m stackyard.cli`
# generated ~20% slower (1.21-1.32x direct, six launches) than one started this way (1.02-1.09x, five
# launches). The cause was not found; bench/runs.py still reports P4 = 1.23 after this change.
STACKYARD = [sys.executable, "-c", "import sys; from stackyard.cli import main; sys.exit(main())"]


def cmd_web(args: argparse.Namespace) -> int:
    import uvicorn

    from stackyard.logs import configure_logging, logging_config
    from stackyard.settings import get_settings
    from store.db import migrate

    configure_logging()
    migrate()
    # uvicorn's 5 s keep-alive equals httpx's idle expiry and undercuts aiohttp's (15 s) and every load
    # balancer's (60 s+): a client reusing a connection at the moment the server closes it loses that
    # request with no response. The side that keeps connections longer must be the server.
    uvicorn.run("stackyard.web:create_app", factory=True, host=args.host, port=args.port, log_config=logging_config(),
                workers=args.workers, timeout_keep_alive=get_settings().web_keep_alive_seconds)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from stackyard.settings import get_settings
    from store.db import migrate
    from worker.app import QUEUES, celery_app
    from worker.threads import limit_torch_threads

    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        raise SystemExit(f"error: unknown queue '{unknown[0]}'; queues are {', '.join(QUEUES)}")
    migrate()
    limit_torch_threads(get_settings().worker_torch_threads, args.concurrency)
    argv = ["worker", "--queues", ",".join(queues), "--concurrency", str(args.concurrency),
            "--loglevel", args.loglevel or get_settings().log_level,
            "--pool", "prefork", "--without-gossip", "--without-mingle", "-n", f"{'-'.join(queues)}@%h-{os.getpid()}"]
    celery_app.worker_main(argv)
    return 0


READY_WAIT_SECONDS = 180.0


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _worker_checked_in() -> bool:
    from runs import workers
    from store.db import autocommit_scope

    with autocommit_scope() as session:
        return "cpu" in workers.live_queues(session)


def announce(url: str, *, wait: float = READY_WAIT_SECONDS) -> None:
    """Print where to open Stackyard once the web app answers and the worker has checked in, so the address is
    the last thing on screen (after the worker's banner) and opening it works at once."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _answers(f"{url}healthz") and _worker_checked_in():
            print(f"\n  Stackyard is ready: open {url}  (Models: {url}models, apps: {url}apps, jobs: {url}jobs)\n",
                  flush=True)
            return
        time.sleep(0.5)
    print(f"\n  Stackyard answers on {url} but no worker has checked in after {wait:g} s: runs wait until one does "
          "(see the worker's log above).\n", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    """The embedded default: vector store + one worker (cpu and gpu queues) + the scheduler + the web app."""
    import threading

    from nodes.stores import ensure_vector_store
    from stackyard.beat_cli import run_beat
    from store.db import migrate

    migrate()
    print(f"vector store: {ensure_vector_store()}", flush=True)
    worker = subprocess.Popen([*STACKYARD, "worker", "--queues", "cpu,gpu",
                               "--concurrency", str(args.concurrency)])

    def stop(*_: object) -> None:
        worker.terminate()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    # Import the web server's modules before other threads run: anyio's import compiles an AST, and CPython 3.11
    # before 3.11.8 keeps the AST builder's recursion depth per interpreter, so a second thread compiling at the
    # same time fails it ("AST constructor recursion depth mismatch", seen once in a full suite here).
    import uvicorn  # noqa: F401

    beat_stop = threading.Event()
    threading.Thread(target=run_beat, kwargs={"stop": beat_stop}, daemon=True, name="stackyard-beat").start()
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    threading.Thread(target=announce, args=(f"http://{host}:{args.port}/",), daemon=True,
                     name="stackyard-announce").start()
    try:
        return cmd_web(argparse.Namespace(host=args.host, port=args.port, workers=1))
    finally:
        from nodes.stores import stop_vector_store

        beat_stop.set()
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        stop_vector_store()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="serve the HTTP API and web UI")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.set_defaults(fn=cmd_web)

    p = sub.add_parser("worker", help="run a Celery worker")
    p.add_argument("--queues", default="cpu", help="comma-separated: cpu, gpu")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--loglevel", default=None, help="default STACKYARD_LOG_LEVEL")
    p.set_defaults(fn=cmd_worker)

    from stackyard.beat_cli import register_beat  # `stackyard beat`: schedules and the batch job pump
    register_beat(sub)

    p = sub.add_parser("up", help="start everything on the embedded default (web + worker + vector store)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--concurrency", type=int, default=1)
    p.set_defaults(fn=cmd_up)
