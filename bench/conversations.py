"""#21's speed targets, on Redis + PostgreSQL with real processes (`stackyard web --workers 2`, one worker of
concurrency 2), a trivial published workflow that reads its history (a prompt naming how many turns it got):

    M1 = reply latency of a conversation's 20th turn / its 1st turn (the app remembers the 19 before, by
         conversation id: read, cut by the memory policy, sent as chat messages), medians over conversations
         run one request at a time, staggered so that first and 20th turns alternate.     Target ≤ 1.2.
    M2 = P2 requests/s with conversations kept (each of 60 clients continues its own conversation by id) /
         P2 requests/s with STACKYARD_CONVERSATIONS=false (nothing stored).                 Target ≥ 0.9.
    M2' = the same kept / conversations off with each client sending its conversation itself (its last 20
         turns as messages, as an OpenAI client keeps it): the same replies and the same history reaching the
         workflow, so it isolates what keeping conversations costs (M2's "off" remembers nothing).

One stack serves all three: two web deployments (2 processes each) on one database and one worker, one keeping
conversations and one not (STACKYARD_CONVERSATIONS=false, for "off" and "client"). The modes are measured in short
windows taken in turn (the order rotated each round), each client carrying its conversation from one window to its
next: this VM's speed drifts by tens of percent within minutes, and a mode measured a minute after another would
measure the drift. (Three stacks side by side would need more connections than PostgreSQL's default 100.)
Run: `.venv/bin/python bench/conversations.py [--conversations 20] [--seconds 5] [--rounds 6]`.
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
from tests.support.stack import Stack, free_port, wait_until  # noqa: E402

CLIENTS = 60
TURNS = 20


def remembering() -> dict:
    return {"components": {"p": {"type": PROMPT, "init_parameters": {
        "template": "Hello {{ name }} ({{ history | length }} earlier messages)"}}},
        "inputs": {"name": ["p.name"], "history": ["p.history"]}, "outputs": {"greeting": "p.prompt"},
        "metadata": {"stackyard": {"chat": {"message": "name", "history": "history", "reply": "greeting"}}}}


def serve(name: str, redis_db: int):
    """A stack serving app ``remember`` (memory: the last 20 turns) from two web deployments, conversations kept
    and not; the base URL of each (``kept``, ``off``), an API key, and the process ids of the webs and the worker
    (each with its children) by kind."""
    context = redis_postgres_stack(name, redis_db=redis_db)
    stack: Stack = context.__enter__()
    try:
        stack.web = stack._spawn(["web", "--port", str(stack.port), "--workers", "2"], "web.log")
        wait_until(stack._web_up, timeout=90, message="web")
        off_port = free_port()
        web_off = stack._spawn(["web", "--port", str(off_port), "--workers", "2"], "web-off.log",
                     STACKYARD_CONVERSATIONS="false")
        off_url = f"http://127.0.0.1:{off_port}"
        wait_until(lambda: _up(off_url), timeout=90, message="web without conversations")
        worker = stack.start_worker(concurrency=2)
        stack.create("remember", remembering())
        made = stack.api("POST", "/api/v1/publications", json={"workflow": "remember", "slug": "remember",
                                                                 "max_concurrency": 1000, "check": False})
        assert made.status_code == 201, made.text
        assert stack.api("PUT", "/api/v1/publications/remember/memory", json={"turns": TURNS}).status_code == 200
        key = stack.api("POST", "/api/v1/keys", json={"rate_per_minute": 100000}).json()["key"]
    except BaseException:
        context.__exit__(None, None, None)
        raise
    return (context, {"kept": stack.base_url, "off": off_url, "client": off_url}, key,
            {"web": [stack.web.pid, web_off.pid], "worker": [worker.pid]})


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def turn(client: httpx.AsyncClient, key: str, conversation: str | None,
               earlier: list[dict[str, str]] | None = None) -> tuple[str | None, str]:
    headers = {"Authorization": f"Bearer {key}", **({"X-Conversation-Id": conversation} if conversation else {})}
    response = await client.post("/v1/chat/completions", headers=headers, json={
        "model": "remember", "messages": [*(earlier or []), {"role": "user", "content": "Ada"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    return body.get("conversation_id"), body["choices"][0]["message"]["content"]


async def latencies(base_url: str, key: str, conversations: int) -> tuple[list[float], list[float]]:
    """Each conversation's 1st and 20th turn latency (seconds). One request at a time, the conversations staggered
    by a turn each (at step s, conversation k asks its turn s - k), so first and 20th turns are spread over the
    whole measurement: the VM's drift falls on both alike."""
    firsts, lasts = [], []
    ids: list[str | None] = [None] * conversations
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for step in range(conversations + TURNS - 1):
            for k in range(conversations):
                n = step - k + 1
                if not 1 <= n <= TURNS:
                    continue
                started = time.perf_counter()
                ids[k], reply = await turn(client, key, ids[k])
                took = time.perf_counter() - started
                if n == 1:
                    firsts.append(took)
                elif n == TURNS:
                    assert reply == f"Hello Ada ({2 * (TURNS - 1)} earlier messages)", reply
                    lasts.append(took)
    return firsts, lasts


MODES = ("kept", "off", "client")


def cpu_seconds(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by the stack's processes, by kind: PostgreSQL (every process of the server: run
    nothing else against it meanwhile), and each kind of ``roots`` (the web deployments, the worker) with their
    children."""
    import psutil

    def used(processes) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                continue
        return total

    seconds = {"postgresql": used(p for p in psutil.process_iter(["name"]) if "postgres" in (p.info["name"] or ""))}
    for kind, pids in roots.items():
        tree = []
        for pid in pids:
            try:
                root = psutil.Process(pid)
                tree += [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        seconds[kind] = used(tree)
    return seconds


def haystack_copies(runs: int = 400) -> tuple[float, float, float]:
    """In this process, the bench's workflow run once with its 20th turn's history (38 messages) and once with none:
    (the extra ms, Haystack as it is; the extra ms with Haystack's copies of component inputs skipped, a probe; the
    extra ms of one request-free ``run_pipeline`` overall). Haystack 3.4's ``Pipeline.run`` deep-copies every
    component's inputs twice (``_deepcopy_with_exceptions``); a ``ChatMessage`` costs ~16 µs a copy on Python
    3.11 (half of it a runtime ``Component`` protocol check), which no Stackyard code can avoid."""
    import haystack.core.pipeline.base as base
    import haystack.core.pipeline.pipeline as pipeline_module

    from workflows.execute import run_pipeline
    from workflows.spec import spec_from_dict
    from workflows.validation import build_pipeline

    spec = spec_from_dict(remembering())
    pipeline = build_pipeline(spec)
    history = [m for n in range(TURNS - 1) for m in (
        {"role": "user", "content": "Ada"}, {"role": "assistant", "content": f"Hello Ada ({2 * n} earlier messages)"})]

    def extra() -> float:
        took = {}
        for name, given in (("none", []), ("20th", history)):
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                run_pipeline(spec, pipeline, {"name": "Ada", "history": given})
                samples.append(time.perf_counter() - started)
            took[name] = statistics.median(samples)
        return (took["20th"] - took["none"]) * 1000

    as_is = extra()
    copies = base._deepcopy_with_exceptions, pipeline_module._deepcopy_with_exceptions
    base._deepcopy_with_exceptions = pipeline_module._deepcopy_with_exceptions = lambda value: (
        dict(value) if isinstance(value, dict) else value)
    try:
        uncopied = extra()
    finally:
        base._deepcopy_with_exceptions, pipeline_module._deepcopy_with_exceptions = copies
    return as_is, uncopied, as_is - uncopied


async def window(base_url: str, key: str, seconds: float, mode: str, clients: list[dict]) -> float:
    """Requests/s of 60 clients for ``seconds``, each continuing its own conversation where its last window left
    it: by id (``kept``), by sending its last turns itself (``client``), or not at all (``off``)."""
    done = 0

    async def loop(client: httpx.AsyncClient, state: dict, stop_at: float) -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            got, reply = await turn(client, key, state["conversation"], state["earlier"] if mode == "client" else None)
            state["conversation"] = got if mode == "kept" else None
            state["earlier"] = [*state["earlier"], {"role": "user", "content": "Ada"},
                                {"role": "assistant", "content": reply}][-2 * TURNS:]
            done += 1

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        started = time.monotonic()
        await asyncio.gather(*(loop(client, state, started + seconds) for state in clients))
        return done / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5, help="length of one measured window")
    parser.add_argument("--rounds", type=int, default=6, help="windows per stack")
    args = parser.parse_args()
    context, urls, key, roots = serve("conversations", 12)
    try:
        asyncio.run(latencies(urls["kept"], key, 2))                                           # warm up
        firsts, lasts = asyncio.run(latencies(urls["kept"], key, args.conversations))
        clients = {mode: [{"conversation": None, "earlier": []} for _ in range(CLIENTS)] for mode in MODES}
        for mode in MODES:                         # warm up, and every client 20 turns into its conversation
            asyncio.run(window(urls[mode], key, 8, mode, clients[mode]))
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        cpu: dict[str, dict[str, float]] = {mode: {} for mode in MODES}       # CPU-s by process kind, per mode
        served = dict.fromkeys(MODES, 0.0)                                    # requests served, per mode
        for round_ in range(args.rounds):
            for mode in MODES[round_ % 3:] + MODES[:round_ % 3]:
                before, started = cpu_seconds(roots), time.monotonic()
                rates[mode].append(asyncio.run(window(urls[mode], key, args.seconds, mode, clients[mode])))
                served[mode] += rates[mode][-1] * (time.monotonic() - started)
                for kind, used in cpu_seconds(roots).items():
                    cpu[mode][kind] = cpu[mode].get(kind, 0.0) + used - before.get(kind, used)
    finally:
        context.__exit__(None, None, None)
    as_is, uncopied, copying = haystack_copies()
    first, last = statistics.median(firsts), statistics.median(lasts)
    kept_rate, off, client = (statistics.mean(rates[mode]) for mode in MODES)
    print(f"Conversations: trivial workflow reading its history, memory = last {TURNS} turns, 2 web workers, "
          f"1 worker (concurrency 2), 2 cores; {args.rounds} windows of {args.seconds:g} s per mode, in turn")
    print(f"    1st turn latency (median of {len(firsts)})   {first * 1000:.1f} ms")
    print(f"    {TURNS}th turn latency                   {last * 1000:.1f} ms")
    print(f"    M1 = {TURNS}th / 1st                      {last / first:.2f} (target ≤ 1.2)")
    for mode, label in (("kept", "conversations kept (by id)   "), ("off", "nothing kept                 "),
                        ("client", "the client sends its turns   ")):
        print(f"    P2, {label}  {statistics.mean(rates[mode]):.1f} req/s (windows "
              f"{min(rates[mode]):.1f}–{max(rates[mode]):.1f})")
    print(f"    M2 = kept / nothing kept            {kept_rate / off:.2f} (target ≥ 0.9)")
    print(f"    M2' = kept / the client's own turns {kept_rate / client:.2f} (the same replies, history kept by the "
          "client)")
    per_request = {mode: {kind: 1000 * used / served[mode] for kind, used in cpu[mode].items()} for mode in MODES}
    print("    CPU per request (ms)                " + "; ".join(
        f"{mode}: " + ", ".join(f"{kind} {ms:.1f}" for kind, ms in sorted(per_request[mode].items()))
        + f" = {sum(per_request[mode].values()):.1f}" for mode in MODES))
    print(f"    the workflow's run, in this process: a 20th turn's history adds {as_is:.2f} ms, of which Haystack's "
          f"own copies of the inputs {copying:.2f} ms ({uncopied:.2f} ms without them)")
    print(f"      M1 leaves a 20th turn {(0.2 * first) * 1000:.1f} ms over the 1st; M2 leaves a kept request "
          f"{0.11 * sum(per_request['off'].values()):.1f} ms of CPU over one that keeps nothing")


if __name__ == "__main__":
    main()
