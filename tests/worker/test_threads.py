"""A worker gives torch cores ÷ (2 × concurrency) threads unless the operator says otherwise, in the processes
it forks too; checked in fresh interpreters, where torch reads its thread count as it loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worker.threads import cores, torch_threads

PROBE = """
import os, sys
from worker.threads import limit_torch_threads
if sys.argv[1] == "loaded":
    import torch
chosen = limit_torch_threads(int(sys.argv[2]) or None, int(sys.argv[3]))
pid = os.fork()
if pid == 0:                                   # a pool process, forked after the choice
    import torch
    print(chosen, torch.get_num_threads(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def probe(when: str, configured: int, concurrency: int, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", PROBE, when, str(configured), str(concurrency)], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    chosen, threads = done.stdout.split()
    return chosen, int(threads)


def test_a_containers_cpu_quota_caps_the_cores(tmp_path):
    quota = tmp_path / "cpu.max"
    mine = cores(tmp_path / "absent")
    for written, expected in (("max 100000", mine), ("50000 100000", 1), ("150000 100000", min(mine, 2)),
                              ("garbage", mine)):
        quota.write_text(written)
        assert cores(quota) == expected, written


def test_the_default_is_half_the_cores_per_pool_process_at_least_one():
    assert [torch_threads(None, c, 8) for c in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]
    assert torch_threads(None, 1, 2) == 1 and torch_threads(None, 1, 1) == 1
    assert torch_threads(6, 4, 2) == 6                                   # the operator's setting wins


@pytest.mark.integration
@pytest.mark.parametrize("when", ["before", "loaded"])
def test_a_worker_pool_process_computes_on_the_threads_chosen(when):
    cores = len(os.sched_getaffinity(0))         # torch uses at most this many, whatever it is told
    if cores < 2:
        pytest.skip("the default and the operator's choices are all 1 thread on 1 core")
    assert probe(when, 0, 1) == (str(cores // 2), cores // 2)
    assert probe(when, cores, 1) == (str(cores), cores)
    assert probe(when, 0, 1, OMP_NUM_THREADS=str(cores)) == ("None", cores)   # the operator's OpenMP setting stands
