"""Evaluations on real processes (Redis + PostgreSQL, `stackyard web` + `stackyard worker`): the issue's targets.

    E1 = cases/s of an evaluation with 1 worker (created → scored: the job, then the scoring on a worker)
         / cases/s of a hand-written loop in this process running the same pipeline over the same cases and the
         same Haystack evaluators (exact match, SAS with MiniLM).                       Target ≥ 0.9.
    E2 = cases/s with 2 workers / cases/s with 1 worker.                                 Target ≥ 1.7.

Each case runs prompt → the tiny local LLM (a fixed number of tokens: real work per case). Workers run with the
product's defaults (torch on cores ÷ (2 × concurrency) threads: one each here); the hand loop is timed with
torch's default threads and with one. Each worker is warmed by a small evaluation first. Also printed: how busy
the cores were during each evaluation. One worker scores its cases on a second thread while it runs the next,
so it keeps more than one core busy; 2 workers can then be at most 1 / (that share) faster: the ceiling on E2.
Run: `.venv/bin/python bench/evaluations.py [--cases 200]`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import redis_postgres_stack, run_job, wait_finished  # noqa: E402

from tests.support.models import TINY_MODEL_ANSWER, build_tiny_chat_model  # noqa: E402
from tests.support.specs import chat  # noqa: E402
from tests.support.stack import Stack, model_paths_env  # noqa: E402
from tests.support.suite_clock import cpu_ticks  # noqa: E402

TINY = "bench/tiny-chat"
SETTINGS = {"metrics": ["exact_match", "sas"]}


def cases(count: int, tag: str) -> str:
    return "\n".join(json.dumps({"id": f"{tag}-{n}", "input": f"question number {n}",
                                 "expected_answer": TINY_MODEL_ANSWER}) for n in range(count))


def evaluate(stack: Stack, test_set: str, timeout: float = 1800) -> tuple[float, float]:
    """Seconds from the evaluation's creation to its scores, and of those after its job's last case."""
    started = stack.api("POST", "/api/v1/evaluations", json={"workflow": "llm", "test_set": test_set,
                                                              "settings": SETTINGS, "concurrency": 4,
                                                              "reuse": False})
    assert started.status_code == 202, started.text
    done = wait_finished(stack, f"/api/v1/evaluations/{started.json()['id']}", ("done", "failed", "cancelled"),
                         timeout)
    assert done["state"] == "done" and done["summary"]["failed"] == 0, done
    assert done["summary"]["metrics"]["sas"]["n"] == done["summary"]["cases"], done["summary"]   # all scored
    job = stack.api("GET", f"/api/v1/jobs/{done['job_id']}").json()
    return done["seconds"], (datetime.fromisoformat(done["finished_at"]) -
                             datetime.fromisoformat(job["finished_at"])).total_seconds()


def plain_job(stack: Stack, count: int) -> float:
    """Seconds of a batch job running the same cases, unscored: what the evaluation adds is the difference."""
    data = "question\n" + "".join(f"question number {n}\n" for n in range(count))
    return run_job(stack, {"workflow": "llm", "source": {"type": "csv", "data": data}, "concurrency": 4})["seconds"]


def hand_loop(count: int, model: Path, tokens: int, threads: int | None = None) -> float:
    """The same pipeline and evaluators, written by hand in this process; seconds for ``count`` cases (torch on
    ``threads`` threads; default: torch's own, every core)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from haystack.components.evaluators import AnswerExactMatchEvaluator, SASEvaluator

    from evaluations.metrics import normalise
    from stackyard.settings import get_settings
    from workflows.execute import run_pipeline
    from workflows.spec import spec_from_dict
    from workflows.validation import build_pipeline

    spec = spec_from_dict(chat(TINY, tokens=tokens))
    pipeline = build_pipeline(spec)
    pipeline.warm_up()
    sas = SASEvaluator(model=get_settings().local_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    sas.warm_up()
    run_pipeline(spec, pipeline, {"question": "warm up"})
    start = time.perf_counter()
    answers = [run_pipeline(spec, pipeline, {"question": f"question number {n}"})["answer"][0]["text"]
               for n in range(count)]
    expected = [TINY_MODEL_ANSWER] * count
    exact = AnswerExactMatchEvaluator().run(ground_truth_answers=[normalise(e) for e in expected],
                                           predicted_answers=[normalise(a) for a in answers])
    similar = sas.run(ground_truth_answers=expected, predicted_answers=answers)
    assert len(exact["individual_scores"]) == len(similar["individual_scores"]) == count
    return time.perf_counter() - start


def _busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time that was busy between two readings of ``cpu_ticks``."""
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=40, help="tokens each case's LLM call generates")
    args = parser.parse_args()
    model = build_tiny_chat_model(Path(tempfile.mkdtemp(prefix="stackyard-tiny-")))
    import os

    os.environ.update(model_paths_env({TINY: model}))
    from stackyard.settings import reset_settings_cache

    reset_settings_cache()
    with redis_postgres_stack("evaluations", redis_db=13, extra_env=model_paths_env({TINY: model})) as stack:
        stack.start_web()
        stack.create("llm", chat(TINY, tokens=args.tokens))
        for name, count in (("warm", 8), ("bench", args.cases)):
            made = stack.api("POST", f"/api/v1/test-sets/{name}/import", params={"format": "jsonl"},
                             content=cases(count, name), headers={"Content-Type": "application/x-ndjson"})
            assert made.status_code == 201, made.text
        times, tails, jobs, busy = {}, {}, {}, {}
        for workers in (1, 2):
            procs = [stack.start_worker(name=f"bench-eval-{workers}-{i}") for i in range(workers)]
            evaluate(stack, "warm")
            before = cpu_ticks()
            times[workers], tails[workers] = evaluate(stack, "bench")
            busy[workers] = _busy(before, cpu_ticks())
            jobs[workers] = plain_job(stack, args.cases)
            for proc in procs:
                stack.kill(proc, signal.SIGTERM)
    hand = hand_loop(args.cases, model, args.tokens)
    hand_one = hand_loop(args.cases, model, args.tokens, threads=1)     # as a worker runs (one thread here)
    one, two = args.cases / times[1], args.cases / times[2]
    print(f"Evaluations: {args.cases} cases, prompt → tiny local LLM ({args.tokens} tokens), exact match + SAS "
          "(MiniLM), concurrency 4, 2 cores")
    print(f"    hand-written loop, torch threads  {args.cases / hand:.1f} cases/s  ({hand:.1f} s)")
    print(f"    hand-written loop, 1 thread       {args.cases / hand_one:.1f} cases/s  ({hand_one:.1f} s, a worker's "
          "threads)")
    print(f"    evaluation, 1 worker              {one:.1f} cases/s  ({times[1]:.1f} s, created → scored; "
          f"cores {busy[1]:.0%} busy)")
    print(f"    evaluation, 2 workers             {two:.1f} cases/s  ({times[2]:.1f} s; cores {busy[2]:.0%} busy)")
    print(f"    E1 = 1 worker / hand loop         {one / (args.cases / hand):.2f} (target ≥ 0.9); against the "
          f"1-thread loop {one / (args.cases / hand_one):.2f}")
    print(f"    E2 = 2 workers / 1 worker         {two / one:.2f} (target ≥ 1.7); at most {1 / busy[1]:.2f} here: one "
          f"worker kept {busy[1]:.0%} of the 2 cores busy")
    print(f"    the same cases as a plain job     1 worker {jobs[1]:.1f} s, 2 workers {jobs[2]:.1f} s "
          f"(2 / 1 workers {jobs[1] / jobs[2]:.2f}); scoring adds {times[1] - jobs[1]:.1f} s and "
          f"{times[2] - jobs[2]:.1f} s,\n"
          f"                                      of which after the last case {tails[1]:.1f} s and {tails[2]:.1f} s")


if __name__ == "__main__":
    main()
