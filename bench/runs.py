"""P1 and P4: what the run engine adds on top of Haystack, measured side by side in one run.

    P1 = p50(sync run API) − p50(direct Pipeline.run), trivial workflow, next to p50(raw Celery no-op
         round trip) on the same Redis. Target: P1 ≤ 2 × raw round trip. Printed with it: the floor any
         implementation of the issue pays (an HTTP round trip + a raw Celery round trip + the three commits
         the issue requires), each measured bare in the same run.
    P4 = p50(second-run execution on the worker) / p50(direct warm Pipeline.run in a process of its own),
         a model workflow, pooled over several launches of each. Target ≤ 1.1, and model loads per worker = 1.

Real processes: `stackyard web` + one `stackyard worker` on Redis and PostgreSQL, a bare Celery worker
for the baseline. Run: `make bench` or `.venv/bin/python bench/runs.py [--n 200]`.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _common import ROOT, redis_postgres_stack  # noqa: E402

from tests.support.models import build_tiny_chat_model  # noqa: E402
from tests.support.specs import chat, greet  # noqa: E402
from tests.support.stack import REDIS_URL, model_paths_env  # noqa: E402

TINY = "bench/tiny-chat"


def p50(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def direct_runner(spec: dict, inputs: dict):
    """A warm pipeline in this process; the returned callable times one `Pipeline.run` (through the same
    input mapping the worker uses)."""
    from workflows.validation import build_pipeline
    from workflows.execute import run_pipeline
    from workflows.spec import spec_from_dict

    parsed = spec_from_dict(spec)
    pipeline = build_pipeline(parsed)
    pipeline.warm_up()
    run_pipeline(parsed, pipeline, inputs)

    def once() -> float:
        start = time.perf_counter()
        run_pipeline(parsed, pipeline, inputs)
        return time.perf_counter() - start

    return once


class DirectProcess:
    """A warm pipeline in a fresh process of its own (bench/_direct.py), timed one `Pipeline.run` per call."""

    def __init__(self, spec: dict, inputs: dict, env: dict[str, str]) -> None:
        import json

        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_direct.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True, cwd=ROOT)
        self.proc.stdin.write(json.dumps({"spec": spec, "inputs": inputs}) + "\n")
        self.proc.stdin.flush()
        self._answer()

    def _answer(self) -> str:
        while line := self.proc.stdout.readline():
            if line.startswith("@"):
                return line[1:].strip()
        raise RuntimeError(f"bench/_direct.py exited with {self.proc.wait()}")

    def once(self) -> float:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return float(self._answer())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def direct(spec: dict, inputs: dict, n: int) -> list[float]:
    once = direct_runner(spec, inputs)
    return [once() for _ in range(n)]


def raw_celery(n: int, root: Path, *, crash_safe: bool = False) -> list[float]:
    """Round trips of a no-op task through a bare Celery app on Redis (result backend: Redis).

    Default: the solo pool with early acks, Celery's cheapest path (the issue's baseline). ``crash_safe``:
    the delivery the issue requires of Stackyard's worker, still with no Stackyard code: a prefork pool
    (hard time limits need one) with late acks and reject-on-worker-lost.
    """
    env = {**os.environ, "BENCH_BROKER": f"{REDIS_URL}/12", "BENCH_BACKEND": f"{REDIS_URL}/13", "PYTHONPATH": str(ROOT / "bench"),
           "BENCH_ACKS_LATE": "1" if crash_safe else "0"}
    pool = ["--pool", "prefork", "--concurrency", "1"] if crash_safe else ["--pool", "solo"]
    log = open(root / "noop.log", "ab")  # noqa: SIM115
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "_noop_app", "worker", *pool,
                               "--without-gossip", "--without-mingle", "--loglevel", "warning"], env=env, stdout=log, stderr=log,
                              start_new_session=True, cwd=ROOT / "bench")
    try:
        os.environ.update({k: env[k] for k in ("BENCH_BROKER", "BENCH_BACKEND")})
        sys.path.insert(0, str(ROOT / "bench"))
        from _noop_app import noop

        for _ in range(20):
            noop.delay().get(timeout=60)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            noop.delay().get(timeout=10)
            times.append(time.perf_counter() - start)
        return times
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


def bare_http(n: int, root: Path) -> list[float]:
    """Round trips to a bare ASGI app on the same uvicorn as `stackyard web`: HTTP with no framework."""
    from tests.support.stack import free_port, wait_until

    port = free_port()
    log = open(root / "bare-http.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "_bare_http:app", "--port", str(port), "--log-level", "warning",
                               "--no-access-log"], stdout=log, stderr=log, start_new_session=True, cwd=ROOT / "bench")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            def up() -> bool:
                try:
                    return client.get("/").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(up, timeout=30, message="bare uvicorn")
            return http_floor(client, n, path="/")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def http_floor(client: httpx.Client, n: int, path: str = "/healthz") -> list[float]:
    """HTTP round trips to ``path`` (on the web process: ``/healthz``, no database, no queue)."""
    for _ in range(20):
        client.get(path)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        client.get(path)
        times.append(time.perf_counter() - start)
    return times


def commits_floor(database_url: str, n: int) -> list[float]:
    """The three commits the issue requires of every run (the run row before enqueue, the claim by
    compare-and-set, the outcome), as bare psycopg statements on one open connection: no ORM, no pool."""
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    times = []
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TEMP TABLE floor_run (id text PRIMARY KEY, state text, outputs text)")
        conn.commit()
        for index in range(n):
            start = time.perf_counter()
            conn.execute("INSERT INTO floor_run VALUES (%s, 'queued', NULL)", (str(index),))
            conn.commit()
            conn.execute("UPDATE floor_run SET state = 'running' WHERE id = %s AND state = 'queued' RETURNING id",
                         (str(index),))
            conn.commit()
            conn.execute("UPDATE floor_run SET state = 'succeeded', outputs = 'x' WHERE id = %s AND state = 'running'",
                         (str(index),))
            conn.commit()
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--launches", type=int, default=3, help="P4: fresh worker + direct process pairs")
    parser.add_argument("--p4-runs", type=int, default=30, help="P4: warm runs per launch on each side")
    args = parser.parse_args()
    model = build_tiny_chat_model(Path(tempfile.mkdtemp(prefix="stackyard-tiny-")))
    with redis_postgres_stack("p1-p4", redis_db=11, extra_env=model_paths_env({TINY: model})) as stack:
        os.environ.update({k: v for k, v in stack.env().items() if k.startswith("STACKYARD_")})
        stack.start_web()
        p1_worker = stack.start_worker(concurrency=1)
        stack.create("trivial", greet())
        client = httpx.Client(base_url=stack.base_url, timeout=30)

        def sync_run(workflow: str, inputs: dict) -> tuple[float, dict]:
            start = time.perf_counter()
            response = client.post(f"/api/v1/workflows/{workflow}/runs", json={"inputs": inputs, "wait": 30})
            elapsed = time.perf_counter() - start
            body = response.json()
            assert body["state"] == "succeeded", body
            return elapsed, body

        for _ in range(20):
            sync_run("trivial", {"name": "warm"})
        api = [sync_run("trivial", {"name": "Ada"})[0] for _ in range(args.n)]
        local = direct(greet(), {"name": "Ada"}, args.n)
        raw = raw_celery(args.n, stack.root)
        raw_safe = raw_celery(args.n, stack.root, crash_safe=True)
        http = http_floor(client, args.n)
        bare = bare_http(args.n, stack.root)
        commits = commits_floor(stack.database_url, args.n)
        overhead = p50(api) - p50(local)
        floor = p50(bare) + p50(raw) + p50(commits)
        floor_safe = p50(bare) + p50(raw_safe) + p50(commits)
        print("P1  trivial workflow, Redis broker + PostgreSQL, 1 worker")
        print(f"    sync run API p50            {ms(p50(api))}  (p95 {ms(sorted(api)[int(len(api) * .95)])})")
        print(f"    direct Pipeline.run p50     {ms(p50(local))}")
        print(f"    raw Celery no-op p50        {ms(p50(raw))}")
        print(f"    P1 = API − direct           {ms(overhead)}  = {overhead / p50(raw):.2f} × raw round trip (target ≤ 2)")
        print("    what any sync run API must at least pay here, each part measured bare in this run:")
        print(f"      HTTP round trip            {ms(p50(bare))}  (bare ASGI app on uvicorn; Stackyard's /healthz: {ms(p50(http))})")
        print(f"      raw Celery round trip      {ms(p50(raw))}  (solo pool, early acks: the baseline above)")
        print(f"      3 PostgreSQL commits       {ms(p50(commits))}  (run row, claim, outcome: psycopg, no ORM)")
        print(f"      floor                      {ms(floor)}  = {floor / p50(raw):.2f} × raw round trip")
        print(f"    the same with the delivery the issue requires (prefork pool for hard time limits, late acks,")
        print(f"    reject on worker lost), still a bare Celery no-op:")
        print(f"      raw Celery round trip      {ms(p50(raw_safe))}")
        print(f"      floor                      {ms(floor_safe)}  = {floor_safe / p50(raw):.2f} × raw round trip")

        spec = chat(TINY, tokens=100)
        stack.create("model", spec)
        stack.kill(p1_worker, signal.SIGTERM)
        # One process's speed varies by up to ±10 % from launch to launch on this VM, whichever side it is on,
        # so both sides are pooled over several launches: a fresh worker and a fresh direct process each time.
        # Within a launch, worker and direct runs alternate, so drift over a minute lands on both alike.
        worker_exec, end_to_end, local, loads_per_worker, ratios = [], [], [], [], []
        for launch in range(args.launches):
            worker = stack.start_worker(concurrency=1, name=f"p4-worker-{launch}")
            direct_run = DirectProcess(spec, {"question": "warm"}, stack.env())
            try:
                loads = sync_run("model", {"question": "cold"})[1]["model_loads"]
                mine_worker, mine_local = [], []
                for _ in range(args.p4_runs):
                    elapsed, body = sync_run("model", {"question": "warm"})
                    started = datetime.fromisoformat(body["started_at"])
                    finished = datetime.fromisoformat(body["finished_at"])
                    mine_worker.append((finished - started).total_seconds())
                    end_to_end.append(elapsed)
                    loads += body["model_loads"]
                    mine_local.append(direct_run.once())
            finally:
                direct_run.close()
                stack.kill(worker, signal.SIGTERM)
            worker_exec += mine_worker
            local += mine_local
            loads_per_worker.append(loads)
            ratios.append(p50(mine_worker) / p50(mine_local))
        print(f"P4  prompt → local LLM (tiny GPT-2, 100 tokens), second and later runs, "
              f"{args.launches} launches × {args.p4_runs} runs")
        print(f"    worker execution p50        {ms(p50(worker_exec))}  (claim → finished, incl. trace rows)")
        print(f"    end-to-end sync API p50     {ms(p50(end_to_end))}")
        print(f"    direct warm Pipeline.run    {ms(p50(local))}  (in a process of its own, like the worker's)")
        print(f"    P4 = worker / direct        {p50(worker_exec) / p50(local):.3f} (target ≤ 1.1); "
              f"per launch {', '.join(f'{r:.3f}' for r in ratios)}")
        print(f"    model loads per worker      {', '.join(map(str, loads_per_worker))} "
              f"(each over {args.p4_runs + 1} runs; target 1)")


if __name__ == "__main__":
    main()
