"""``stackyard beat``: the scheduler process. Every second it fires due schedule ticks (the jobs they
start are dispatched at once) and every few seconds it pumps batch jobs (see ``worker.batch.pump``).

Run one or several: ticks are claimed in the database (``jobs.schedules``), so two schedulers
fire each tick once, and either may stop at any time. Ticks start on whole seconds, so cron ticks
fire within a few milliseconds when a scheduler is up.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time

log = logging.getLogger("stackyard.beat")
TICK_SECONDS = 1.0
PUMP_SECONDS = 2.0


def scheduler_name() -> str:
    return f"beat@{socket.gethostname()}:{os.getpid()}"


def run_beat(*, stop: threading.Event, name: str | None = None) -> None:
    """Tick until ``stop`` is set."""
    from jobs import schedules
    from store.clock import utcnow
    from worker import batch

    name = name or scheduler_name()
    next_pump = 0.0
    log.info("%s ticking every %g s", name, TICK_SECONDS)
    while not stop.is_set():
        try:
            for job_id in schedules.fire_due(scheduler=name, now=utcnow()):
                batch.dispatch(job_id)
            if time.monotonic() >= next_pump:
                next_pump = time.monotonic() + PUMP_SECONDS
                batch.pump()
        except Exception:  # noqa: BLE001 - the database may be away; the next tick retries
            log.exception("tick failed")
        stop.wait(TICK_SECONDS - time.time() % TICK_SECONDS + 0.005)


def cmd_beat(args: argparse.Namespace) -> int:
    from stackyard.logs import configure_logging
    from store.db import migrate

    configure_logging(level=args.loglevel)
    migrate()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"{scheduler_name()} ready.", flush=True)
    run_beat(stop=stop)
    return 0


def register_beat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("beat", help="run the scheduler: fire schedules, pump batch jobs (run one or more)")
    p.add_argument("--loglevel", default=None, help="default STACKYARD_LOG_LEVEL")
    p.set_defaults(fn=cmd_beat)
