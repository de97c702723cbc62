"""#18.4: time to first token through `/v1/chat/completions` (stream=True) against the same generator streaming
directly, in one run, on the embedded default (SQLite broker and database, no servers) and on Redis + PostgreSQL.

The generator is Haystack's OpenAIChatGenerator against the in-test OpenAI-compatible server, which sends its
first word after ``--delay`` seconds: "direct" calls it in this process with a streaming callback; "Stackyard"
is a published app on real `stackyard web` + `stackyard worker` processes, read with httpx. Samples alternate
(direct, Stackyard, direct, …) so a slow moment costs both sides. Goal: ≤ 30 ms added at p50.
Run: `.venv/bin/python bench/streaming.py [--samples 40] [--delay 0.05]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _common import PRODUCT_DEFAULTS, redis_postgres_stack  # noqa: E402

from tests.support.openai_server import ChatServer  # noqa: E402
from tests.support.specs import REMOTE_LLM_ENV, remote_chat  # noqa: E402
from tests.support.stack import Stack  # noqa: E402

REPLY = "one two three four five six seven eight"


class Direct:
    """The generator the app runs, built and warmed once in this process (as the worker keeps it warm)."""

    def __init__(self, base_url: str) -> None:
        from haystack.components.generators.chat import OpenAIChatGenerator
        from haystack.utils import Secret

        self.first: list[float] = []
        self.generator = OpenAIChatGenerator(api_key=Secret.from_token("k"), model="local-model",
                                             api_base_url=base_url, streaming_callback=self.token)
        self.generator.warm_up()

    def token(self, chunk) -> None:
        if chunk.content and not self.first:
            self.first.append(time.perf_counter())

    def ttft(self) -> float:
        from haystack.dataclasses import ChatMessage

        self.first.clear()
        started = time.perf_counter()
        self.generator.run([ChatMessage.from_user("count")])
        return self.first[0] - started


def stackyard_ttft(client: httpx.Client, key: str) -> float:
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "count"}]}
    started = time.perf_counter()
    first = None
    with client.stream("POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as response:
        for line in response.iter_lines():
            if first is None and line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    first = time.perf_counter() - started
    if first is None:
        raise SystemExit(f"no token streamed (HTTP {response.status_code})")
    return first


def serve(stack: Stack, base_url: str) -> str:
    stack.extra_env["TEST_LLM_KEY"] = "k"
    stack.start_web()
    stack.start_worker(queues="cpu,gpu", concurrency=2, name="worker-bench")
    slow = remote_chat(base_url)
    slow["metadata"] = {"stackyard": {"chat": {"message": "question", "reply": "answer"}}}
    stack.create("slow-chat", slow)
    assert stack.api("POST", "/api/v1/publications", json={"workflow": "slow-chat", "slug": "slow"}).status_code == 201
    return stack.api("POST", "/api/v1/keys", json={"name": "bench"}).json()["key"]


def measure(label: str, stack: Stack, server: ChatServer, samples: int) -> None:
    key, local = serve(stack, server.base_url), Direct(server.base_url)
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        for _ in range(3):  # warm: the worker builds the pipeline once, connections open
            stackyard_ttft(client, key)
            local.ttft()
        direct, via = [], []
        for _ in range(samples):
            direct.append(local.ttft())
            via.append(stackyard_ttft(client, key))
    d50, v50 = statistics.median(direct), statistics.median(via)
    v95 = statistics.quantiles(via, n=20)[-1]
    print(f"    {label:22} direct p50 {d50 * 1000:6.1f} ms   Stackyard p50 {v50 * 1000:6.1f} ms (p95 {v95 * 1000:6.1f})"
          f"   added p50 {(v50 - d50) * 1000:6.1f} ms   (goal ≤ 30)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds before each word the server sends")
    args = parser.parse_args()
    print(f"#18.4  time to first token, {args.samples} alternating samples, first word after {args.delay * 1000:.0f} ms")
    with ChatServer(REPLY, delay=args.delay) as server:
        root = Path(tempfile.mkdtemp(prefix="stackyard-streaming-"))
        broker = f"sqla+sqlite:///{root / 'data' / 'broker.db'}"
        embedded = Stack(root=root, database_url=f"sqlite:///{root / 'data' / 'stackyard.db'}", broker_url=broker,
                         extra_env={**PRODUCT_DEFAULTS, **REMOTE_LLM_ENV, "STACKYARD_BROKER_URL": broker})
        try:
            measure("embedded (make run)", embedded, server, args.samples)
        finally:
            embedded.stop()
        with redis_postgres_stack("streaming", 11, extra_env=REMOTE_LLM_ENV) as stack:
            measure("Redis + PostgreSQL", stack, server, args.samples)


if __name__ == "__main__":
    main()
