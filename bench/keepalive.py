"""#16.4: a 2,000-request burst over keep-alive connections that pause between requests, as clients and
load balancers do. Prints requests lost (sent, never answered) with uvicorn's default 5 s keep-alive and
with Stackyard's setting, side by side on the same machine in one run.

Each of 128 connections (``http.client``, which reuses a connection without first checking whether the
server closed it, like a load balancer's upstream pool) sends its share of POST /runs with a random pause
of 0–8 s between requests.
Run: `.venv/bin/python bench/keepalive.py [--requests 2000] [--connections 128]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import redis_postgres_stack  # noqa: E402

from tests.support.specs import greet  # noqa: E402


def connection_loop(port: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    outcomes = []
    for _ in range(count):
        try:
            conn.request("POST", "/api/v1/workflows/greet/runs", body=json.dumps({"inputs": {"name": "Ada"}}),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            outcomes.append(str(response.status))
        except (http.client.HTTPException, OSError) as exc:
            outcomes.append(type(exc).__name__)
            conn.close()  # the next request opens a new connection
        time.sleep(rng.uniform(0, 8))
    conn.close()
    return outcomes


def burst(keep_alive: str | None, requests: int, connections: int) -> tuple[dict[str, int], int, float]:
    with redis_postgres_stack("keepalive", redis_db=11) as stack:
        stack.start_web(**({"STACKYARD_WEB_KEEP_ALIVE_SECONDS": keep_alive} if keep_alive else {}))
        stack.create("greet", greet())
        started = time.monotonic()
        shares = [requests // connections + (i < requests % connections) for i in range(connections)]
        with ThreadPoolExecutor(connections) as pool:
            outcomes = [o for batch in pool.map(connection_loop, [stack.port] * connections, shares, range(connections))
                        for o in batch]
        elapsed = time.monotonic() - started
        runs = len(stack.api("GET", "/api/v1/runs", params={"limit": 1000}).json())
        counts = {outcome: outcomes.count(outcome) for outcome in sorted(set(outcomes))}
        return counts, runs, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=128)
    args = parser.parse_args()
    print(f"#16.4  {args.requests} POST /runs over {args.connections} keep-alive connections, 0-8 s pauses, 2 cores")
    lost = 0
    for label, keep_alive in (("uvicorn default (5 s)", "5"), ("Stackyard default (75 s)", None)):
        counts, runs, elapsed = burst(keep_alive, args.requests, args.connections)
        lost = sum(n for outcome, n in counts.items() if not outcome.isdigit())
        print(f"    {label:26} lost {lost:5d} of {args.requests}   outcomes {counts}   "
              f"runs listed (first 1000) {runs}   {elapsed:.0f} s")
    if lost:  # the product's default must lose none; the old default's losses are the comparison
        sys.exit(f"FAIL: Stackyard's default keep-alive lost {lost} of {args.requests} requests")


if __name__ == "__main__":
    main()
