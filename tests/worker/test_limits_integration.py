"""Time limits, GPU routing and crash recovery with real worker processes."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.specs import chat, greet, remote_chat
from tests.support.stack import TINY, Stack, free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_gpu_runs_wait_for_a_gpu_worker_and_the_api_says_so(stack: Stack):
    # First in the module: a worker an earlier test discarded (SIGKILL) would count as a gpu consumer for
    # runs.attempts.Lease.alive_seconds after its last heartbeat, and hold back the notice this test waits for.
    cpu = stack.start_worker(queues="cpu", name="worker-cpu-only")
    try:
        stack.create("chat-gpu", chat(TINY))
        run = stack.start_run("chat-gpu", {"question": "q"})
        doomed = stack.start_run("chat-gpu", {"question": "never runs"})
        assert run["queue"] == doomed["queue"] == "gpu"
        cancelled = stack.api("POST", f"/api/v1/runs/{doomed['id']}/cancel").json()
        assert cancelled["state"] == "cancelled" and cancelled["error"] == "cancelled before it started"
        wait_until(lambda: stack.run(run["id"])["notice"], timeout=30, message="notice about the gpu queue")
        waiting = stack.run(run["id"])
        assert waiting["state"] == "queued" and "stackyard worker --queues gpu" in waiting["notice"]
        cpu_run = stack.start_run("greet", {"name": "cpu"}, wait=30) if _has(stack, "greet") else None
        if cpu_run:
            assert cpu_run["state"] == "succeeded"
        gpu = stack.start_worker(queues="gpu", name="worker-gpu")
        try:
            done = stack.wait_state(run["id"], {"succeeded", "failed"}, timeout=120)
            assert done["state"] == "succeeded" and done["notice"] is None
            # The cancelled run's message reached the worker too, and changed nothing.
            never = stack.run(doomed["id"])
            assert never["state"] == "cancelled" and never["node_runs"] == [] and never["attempts"] == 0
        finally:
            stack.discard(gpu)
    finally:
        stack.discard(cpu)


def test_a_run_past_its_soft_time_limit_fails_naming_the_limit(stack: Stack):
    # The limit is a setting read when the run is created, so a second web process with a short limit (same
    # database and broker, another port) creates the run; the worker enforces what the run row says.
    proc = stack.start_worker(queues="cpu,gpu", name="worker-limits")
    limited = dataclasses.replace(stack, port=free_port(), processes=[], web=None)
    try:
        stack.create("chat-too-long", chat(TINY, tokens=1800, chain=8))
        limited.start_web(STACKYARD_RUN_SOFT_TIME_LIMIT="2", STACKYARD_RUN_HARD_TIME_LIMIT="30")
        run = limited.start_run("chat-too-long", {"question": "long"})
        done = stack.wait_state(run["id"], {"succeeded", "failed", "cancelled"}, timeout=90)
        assert done["state"] == "failed"
        assert "soft time limit of 2 s" in done["error"]
    finally:
        stack.discard(proc)
        if limited.web:
            limited.discard(limited.web)


def _has(stack: Stack, name: str) -> bool:
    if stack.api("GET", f"/api/v1/workflows/{name}").status_code == 200:
        return True
    stack.create(name, greet())
    return True


def test_transient_errors_are_retried_with_backoff_then_succeed(stack: Stack):
    from tests.support.openai_server import ChatServer
    from tests.support.stack import free_port

    port = free_port()
    proc = stack.start_worker(queues="cpu", name="worker-retry", TEST_LLM_KEY="k")
    try:
        stack.create("remote-chat", remote_chat(f"http://127.0.0.1:{port}/v1"))
        run = stack.start_run("remote-chat", {"question": "up yet?"})
        # Nothing listens on the port yet: the first attempt fails with a connection error and is retried.
        retrying = wait_until(lambda: (r := stack.run(run["id"]))["state"] == "retrying" and r, timeout=60,
                              interval=0.05, message="retrying after a connection error")
        assert "transient error, retrying in" in retrying["error"] and "APIConnectionError" in retrying["error"]
        with ChatServer("the server is up", port=port) as server:
            done = stack.wait_state(run["id"], {"succeeded", "failed"}, timeout=60)
            assert done["state"] == "succeeded", done["error"]
            assert done["attempts"] >= 2 and done["outputs"]["answer"][0]["text"] == "the server is up"
            assert server.requests[0]["messages"][0]["content"] == "Question: up yet?"
    finally:
        stack.discard(proc)


def test_a_permanent_failure_is_not_retried(stack: Stack):
    proc = stack.start_worker(queues="cpu", name="worker-permanent")
    try:
        spec = greet()
        # A constant range this large is refused when the workflow is saved; one sized by an input fails when run.
        spec["components"]["p"]["init_parameters"]["template"] = "{% for x in range(name|int) %}{% endfor %}{{ name }}"
        stack.create("greet-huge-loop", spec)
        done = stack.start_run("greet-huge-loop", {"name": "1000000000"}, wait=60)
        assert done["state"] == "failed" and done["attempts"] == 1
        assert "MAX_RANGE" in done["error"] or "Range too big" in done["error"]
        assert [n["state"] for n in done["node_runs"]] == ["failed"]
    finally:
        stack.discard(proc)
