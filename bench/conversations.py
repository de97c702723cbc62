"""#21's speed targets, on Redis + PostgreSQL with real processes (`stackyard web --workers 2`, one worker of
concurrency 2), a trivial published workflow that reads its history (a prompt naming how many turns it got):

    M1 = reply latency of a conversation's 20th turn / its 1st turn (the app remembers the 19 before, by
         conversation id: read, cut by the memory policy, sent as chat messages), medians over conversations
         run one at a time.                                                              Target ≤ 1.2.
    M2 = P2 requests/s with conversations kept (each of 60 clients continues its own conversation by id) /
         P2 requests/s with STACKYARD_CONVERSATIONS=false (nothing stored), stacks interleaved on, off, on, off.
                                                                                         Target ≥ 0.9.
    M2' = the same kept / conversations off with each client sending its conversation itself (its last 20
         turns as messages, as an OpenAI client keeps it): the same replies and the same history reaching the
         workflow, so it isolates what keeping conversations costs (M2's "off" remembers nothing).

Run: `.venv/bin/python bench/conversations.py [--conversations 10] [--seconds 15] [--rounds 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _common import redis_postgres_stack  # noqa: E402

from tests.support.specs import PROMPT  # noqa: E402
from tests.support.stack import Stack, wait_until  # noqa: E402

CLIENTS = 60
TURNS = 20


def remembering() -> dict:
    return {"components": {"p": {"type": PROMPT, "init_parameters": {
        "template": "Hello {{ name }} ({{ history | length }} earlier messages)"}}},
        "inputs": {"name": ["p.name"], "history": ["p.history"]}, "outputs": {"greeting": "p.prompt"},
        "metadata": {"stackyard": {"chat": {"message": "name", "history": "history", "reply": "greeting"}}}}


def serve(name: str, redis_db: int, keep: bool):
    """A stack serving app ``remember`` (memory: the last 20 turns) with conversations kept or not; its key."""
    context = redis_postgres_stack(name, redis_db=redis_db,
                                   extra_env={"STACKYARD_CONVERSATIONS": "true" if keep else "false"})
    stack: Stack = context.__enter__()
    stack.web = stack._spawn(["web", "--port", str(stack.port), "--workers", "2"], "web.log")
    wait_until(stack._web_up, timeout=90, message="web")
    stack.start_worker(concurrency=2)
    stack.create("remember", remembering())
    made = stack.api("POST", "/api/v1/publications", json={"workflow": "remember", "slug": "remember",
                                                             "max_concurrency": 1000, "check": False})
    assert made.status_code == 201, made.text
    assert stack.api("PUT", "/api/v1/publications/remember/memory", json={"turns": TURNS}).status_code == 200
    key = stack.api("POST", "/api/v1/keys", json={"rate_per_minute": 100000}).json()["key"]
    return context, stack, key


async def turn(client: httpx.AsyncClient, key: str, conversation: str | None,
               earlier: list[dict[str, str]] | None = None) -> tuple[str | None, str]:
    headers = {"Authorization": f"Bearer {key}", **({"X-Conversation-Id": conversation} if conversation else {})}
    response = await client.post("/v1/chat/completions", headers=headers, json={
        "model": "remember", "messages": [*(earlier or []), {"role": "user", "content": "Ada"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    return body.get("conversation_id"), body["choices"][0]["message"]["content"]


async def latencies(base_url: str, key: str, conversations: int) -> tuple[list[float], list[float]]:
    """Each conversation's 1st and 20th turn latency (seconds), conversations one at a time."""
    firsts, lasts = [], []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for _ in range(conversations):
            conversation = None
            for n in range(1, TURNS + 1):
                started = time.perf_counter()
                conversation, reply = await turn(client, key, conversation)
                took = time.perf_counter() - started
                if n == 1:
                    firsts.append(took)
                elif n == TURNS:
                    assert reply == f"Hello Ada ({2 * (TURNS - 1)} earlier messages)", reply
                    lasts.append(took)
    return firsts, lasts


async def throughput(base_url: str, key: str, seconds: float, mode: str) -> tuple[float, int]:
    """Requests/s of 60 clients, each continuing its own conversation: by id (``kept``), by sending its last
    turns itself (``client``), or not at all (``off``); errors."""
    done, errors = 0, 0

    async def loop(client: httpx.AsyncClient, stop_at: float) -> None:
        nonlocal done, errors
        conversation, earlier = None, []
        while time.monotonic() < stop_at:
            try:
                got, reply = await turn(client, key, conversation, earlier if mode == "client" else None)
                conversation = got if mode == "kept" else None
                earlier = [*earlier, {"role": "user", "content": "Ada"},
                           {"role": "assistant", "content": reply}][-2 * TURNS:]
                done += 1
            except (AssertionError, httpx.HTTPError):
                errors += 1

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(loop(client, time.monotonic() + 3) for _ in range(CLIENTS)))     # warm up
        done, errors = 0, 0
        started = time.monotonic()
        await asyncio.gather(*(loop(client, started + seconds) for _ in range(CLIENTS)))
        return done / (time.monotonic() - started), errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"kept": [], "off": [], "client": []}
    firsts, lasts, errors = [], [], 0
    for round_ in range(args.rounds):
        for mode in rates:
            context, stack, key = serve(f"conversations-{round_}-{mode}", 12, mode == "kept")
            try:
                if mode == "kept" and round_ == 0:
                    asyncio.run(latencies(stack.base_url, key, 2))                             # warm up
                    firsts, lasts = asyncio.run(latencies(stack.base_url, key, args.conversations))
                rate, failed = asyncio.run(throughput(stack.base_url, key, args.seconds, mode))
                rates[mode].append(rate)
                errors += failed
            finally:
                context.__exit__(None, None, None)
    first, last = statistics.median(firsts), statistics.median(lasts)
    kept, off, client = (statistics.mean(rates[mode]) for mode in ("kept", "off", "client"))
    print(f"Conversations: trivial workflow reading its history, memory = last {TURNS} turns, 2 web workers, "
          "1 worker (concurrency 2), 2 cores")
    print(f"    1st turn latency (median of {len(firsts)})   {first * 1000:.1f} ms")
    print(f"    {TURNS}th turn latency                   {last * 1000:.1f} ms")
    print(f"    M1 = {TURNS}th / 1st                      {last / first:.2f} (target ≤ 1.2)")
    print(f"    P2, conversations kept (by id)      {', '.join(f'{r:.1f}' for r in rates['kept'])} req/s")
    print(f"    P2, nothing kept                    {', '.join(f'{r:.1f}' for r in rates['off'])} req/s")
    print(f"    P2, the client sends its turns      {', '.join(f'{r:.1f}' for r in rates['client'])} req/s "
          "(interleaved: kept, off, client, kept, ...)")
    print(f"    M2 = kept / nothing kept            {kept / off:.2f} (target ≥ 0.9); errors {errors}")
    print(f"    M2' = kept / the client's own turns {kept / client:.2f} (the same replies, history kept by the client)")


if __name__ == "__main__":
    main()
