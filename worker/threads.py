"""How many CPU threads torch uses in a worker process.

Torch's own default is one thread per core in every process. A worker process runs its model between database
writes and broker calls; when it stops computing, torch's idle threads keep spinning on every core, taking the
CPU from PostgreSQL, the web app and the worker's other threads (its case scorer). On this 2-core machine an
evaluation on one worker ran 1.5× slower with torch's default than with one thread (bench/evaluations.py).
The default here gives each pool process half the cores it would share with the rest: ``cores ÷ (2 ×
concurrency)``, at least 1. ``STACKYARD_WORKER_TORCH_THREADS`` sets it, and so does an explicit
``OMP_NUM_THREADS``.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

CPU_QUOTA = Path("/sys/fs/cgroup/cpu.max")


def cores(quota_file: Path = CPU_QUOTA) -> int:
    """The cores this process may run on: its CPU set, cut to its container's CPU quota (cgroup v2
    ``cpu.max``, e.g. ``docker --cpus`` or a Kubernetes limit), not the host's count."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:      # not Linux
        available = os.cpu_count() or 1
    try:
        quota, period = quota_file.read_text().split()[:2]
        if quota != "max":
            available = min(available, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):   # no cgroup v2 quota here
        pass
    return available


def torch_threads(configured: int | None, concurrency: int, available: int) -> int:
    """The threads each of ``concurrency`` pool processes gives torch on ``available`` cores."""
    if configured:
        return configured
    return max(1, available // (2 * max(1, concurrency)))


def limit_torch_threads(configured: int | None, concurrency: int) -> int | None:
    """Set torch's CPU threads for this worker and the pool processes it forks, before any of them computes;
    None when the operator set ``OMP_NUM_THREADS`` and no Stackyard setting (theirs stands)."""
    if not configured and os.environ.get("OMP_NUM_THREADS"):
        return None
    threads = torch_threads(configured, concurrency, cores())
    os.environ["OMP_NUM_THREADS"] = str(threads)                                  # read when torch loads
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    if "torch" in sys.modules:                                                    # already loaded: tell it
        sys.modules["torch"].set_num_threads(threads)
    return threads
