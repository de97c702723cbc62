"""P2: 60 concurrent clients on a trivial published workflow (OpenAI-compatible, non-streaming).

Prints requests/s and p50/p95 latency (targets ≥ 100 req/s, p95 < 1 s) on Redis + PostgreSQL with real
processes: `stackyard web --workers W` and `stackyard worker --concurrency C`.
Run: `.venv/bin/python bench/chat.py [--clients 60] [--seconds 20] [--web-workers 2] [--worker-concurrency 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _common import redis_postgres_stack  # noqa: E402

from tests.support.specs import greet  # noqa: E402
from tests.support.stack import wait_until  # noqa: E402


async def client_loop(client: httpx.AsyncClient, key: str, stop_at: float, latencies: list[float], errors: list[str]) -> None:
    body = {"model": "hello", "messages": [{"role": "user", "content": "Ada"}]}
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        try:
            response = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        except httpx.TransportError as exc:  # a dropped connection is a failed request, not the end of the bench
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "Hello Ada":
            latencies.append(time.perf_counter() - start)
        else:
            errors.append(f"{response.status_code} {response.text[:200]}")


async def load(base_url: str, key: str, clients: int, seconds: float) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        started = time.monotonic()
        await asyncio.gather(*(client_loop(client, key, started + seconds, latencies, errors) for _ in range(clients)))
        return latencies, errors, time.monotonic() - started


def ab_load(base_url: str, key: str, clients: int, requests: int) -> dict[str, float] | None:
    """The same requests from ApacheBench (C, keep-alive), which leaves the 2 cores to the server under test."""
    if shutil.which("ab") is None:
        return None
    body = {"model": "hello", "messages": [{"role": "user", "content": "Ada"}]}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(body, file)
        file.flush()
        done = subprocess.run(["ab", "-q", "-k", "-n", str(requests), "-c", str(clients), "-p", file.name,
                               "-T", "application/json", "-H", f"Authorization: Bearer {key}",
                               f"{base_url}/v1/chat/completions"], capture_output=True, text=True, timeout=600)
    out = done.stdout

    def number(pattern: str) -> float:
        found = re.search(pattern, out, re.MULTILINE)
        return float(found.group(1)) if found else float("nan")

    return {"rps": number(r"^Requests per second:\s+([\d.]+)"), "p50": number(r"^\s+50%\s+(\d+)"),
            "p95": number(r"^\s+95%\s+(\d+)"), "failed": number(r"^Failed requests:\s+(\d+)"),
            "non2xx": number(r"^Non-2xx responses:\s+(\d+)") if "Non-2xx" in out else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    args = parser.parse_args()
    with redis_postgres_stack("p2", redis_db=10) as stack:
        stack.web = stack._spawn(["web", "--port", str(stack.port), "--workers", str(args.web_workers)], "web.log")
        wait_until(stack._web_up, timeout=90, message="web")
        stack.start_worker(concurrency=args.worker_concurrency)
        spec = greet()
        spec["metadata"] = {"stackyard": {"chat": {"message": "name", "reply": "greeting"}}}
        stack.create("hello", spec)
        stack.api("POST", "/api/v1/publications", json={"workflow": "hello", "slug": "hello", "max_concurrency": 1000})
        key = stack.api("POST", "/api/v1/keys", json={"rate_per_minute": 100000}).json()["key"]
        asyncio.run(load(stack.base_url, key, args.clients, 3))  # warm every process
        latencies, errors, elapsed = asyncio.run(load(stack.base_url, key, args.clients, args.seconds))
        latencies.sort()
        print(f"P2  {args.clients} concurrent clients, trivial published workflow, {elapsed:.1f} s, "
              f"web workers {args.web_workers}, worker concurrency {args.worker_concurrency}, 2 cores")
        print(f"    requests/s     {len(latencies) / elapsed:.1f}  (target ≥ 100)")
        print(f"    p50 latency    {statistics.median(latencies) * 1000:.0f} ms")
        print(f"    p95 latency    {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms  (target < 1000 ms)")
        print(f"    errors         {len(errors)}{'  e.g. ' + errors[0] if errors else ''}")
        ab = ab_load(stack.base_url, key, args.clients, max(1000, int(len(latencies) / elapsed * args.seconds)))
        if ab is None:
            print("    (ab not installed: `apt-get install apache2-utils` for the C load generator figures)")
        else:
            print(f"P2  same load from ApacheBench (keep-alive; the load generator takes almost no CPU)")
            print(f"    requests/s     {ab['rps']:.1f}  (target ≥ 100)")
            print(f"    p50 / p95      {ab['p50']:.0f} / {ab['p95']:.0f} ms  (target p95 < 1000 ms)")
            print(f"    failed         {ab['failed']:.0f} (non-2xx {ab['non2xx']:.0f})")


if __name__ == "__main__":
    main()
