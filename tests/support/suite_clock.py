"""How long the whole suite took, and on how fast a machine: printed at the end of every run.

This VM's speed varies between days: the same commit's `make test` ran 18:25 on 2026-12-03 and 47:50 on
2026-12-05, using about 2.5x the CPU-seconds. A wall time alone cannot say whether the suite got slower or the
machine did. So each run also measures a fixed piece of pure-Python work (the reference) on the idle machine
before the tests start, and reports the suite's CPU-seconds in units of it: that figure moves only when the
suite's own work does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

REFERENCE_LOOPS = 3_000_000


def reference_seconds() -> float:
    """CPU-seconds of a fixed pure-Python loop, the best of three (about 0.25-0.6 s each here)."""
    best = float("inf")
    for _ in range(3):
        started, total = time.process_time(), 0
        for n in range(REFERENCE_LOOPS):
            total += n
        best = min(best, time.process_time() - started)
    return best


def cpu_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat; (0, 0) where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)     # idle and iowait
    return sum(fields) - idle, sum(fields)


@dataclass
class SuiteClock:
    started: float
    ticks: tuple[int, int]
    reference: float

    @classmethod
    def start(cls) -> SuiteClock:
        reference = reference_seconds()
        return cls(time.monotonic(), cpu_ticks(), reference)

    def report(self) -> str:
        wall = time.monotonic() - self.started
        busy, total = (now - then for now, then in zip(cpu_ticks(), self.ticks, strict=True))
        hertz = os.sysconf("SC_CLK_TCK")
        cores = os.cpu_count() or 1
        cpu = busy / hertz
        share = busy / total if total else 0.0
        return (f"suite clock: {wall:,.0f} s wall; the machine's {cores} cores {share:.0%} busy ({cpu:,.1f} CPU-s); "
                f"reference loop {self.reference:.3f} CPU-s (this machine's speed now); suite = "
                f"{cpu / self.reference:,.0f} reference units, {wall / self.reference:,.0f} in wall time")
