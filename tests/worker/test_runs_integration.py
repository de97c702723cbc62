"""Runs through the HTTP API on real worker processes, on Redis + PostgreSQL and on the embedded broker.

Each scenario runs once per ``stack`` parameter (see conftest): the same behaviour on both brokers.
"""

from __future__ import annotations

import time

import pytest

from tests.support.specs import chat, greet
from tests.support.stack import TINY, TINY_COLD, Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def worker(stack: Stack):
    proc = stack.start_worker(name="worker-main")
    yield proc
    if proc.poll() is None:
        stack.discard(proc)


def test_run_through_the_api_shows_node_runs_then_outputs(stack: Stack, worker):
    stack.create("chat-watch", chat(TINY, tokens=250))
    run = stack.start_run("chat-watch", {"question": "what is it?"})
    assert run["state"] in ("queued", "running") and run["queue"] == "gpu"  # a fast worker may claim it first
    # While the generator is still going, the prompt node is already recorded as done.
    seen = wait_until(lambda: (r := stack.run(run["id"]))["state"] == "running"
                      and any(n["node"] == "prompt" and n["state"] == "done" for n in r["node_runs"]) and r,
                      timeout=120, interval=0.05, message="prompt node done while the run is running")
    prompt_row = next(n for n in seen["node_runs"] if n["node"] == "prompt")
    assert prompt_row["output_preview"] == {"prompt": "Question: what is it?"}
    assert prompt_row["duration_ms"] >= 0
    done = stack.wait_state(run["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done["error"]
    assert done["outputs"]["answer"][0]["text"].startswith("the answer is stackyard")
    assert [n["node"] for n in done["node_runs"]] == ["prompt", "llm"]
    assert all(n["state"] == "done" for n in done["node_runs"])


def test_sync_wait_returns_the_outputs(stack: Stack, worker):
    stack.create("greet", greet())
    response = stack.api("POST", "/api/v1/workflows/greet/runs", json={"inputs": {"name": "Ada"}, "wait": 30})
    assert response.status_code == 200
    assert response.json()["outputs"] == {"greeting": "Hello Ada"}


def test_second_run_on_the_same_worker_loads_no_model(stack: Stack, worker):
    stack.create("chat-warm", chat(TINY_COLD))
    first = stack.start_run("chat-warm", {"question": "one"}, wait=60)
    second = stack.start_run("chat-warm", {"question": "two"}, wait=60)
    assert first["state"] == second["state"] == "succeeded"
    assert first["worker"] == second["worker"]
    assert first["model_loads"] == 1
    assert second["model_loads"] == 0
    # Another workflow with the same generator config shares the loaded model.
    twin = chat(TINY_COLD)
    twin["components"]["prompt"]["init_parameters"]["template"] = "Other: {{ question }}"
    stack.create("chat-warm-twin", twin)
    third = stack.start_run("chat-warm-twin", {"question": "three"}, wait=60)
    assert third["state"] == "succeeded" and third["model_loads"] == 0


def test_a_model_this_machine_lacks_fails_on_its_node_with_the_fix(stack: Stack, worker):
    stack.create("chat-missing", chat("acme/not-on-this-machine"))
    done = stack.start_run("chat-missing", {"question": "hello"}, wait=60)
    assert done["state"] == "failed" and done["attempts"] == 1, done
    assert done["error"].startswith("Node 'llm' cannot load model 'acme/not-on-this-machine'")
    assert "STACKYARD_MODEL_PATHS" in done["error"]
    # The trace blames the node; the prompt never ran (the page shows it as not reached).
    assert [(n["node"], n["state"], n["error"]) for n in done["node_runs"]] == [("llm", "failed", done["error"])]


def test_cancel_stops_a_long_run(stack: Stack, worker):
    stack.create("chat-long", chat(TINY, tokens=1800, chain=8))
    run = stack.start_run("chat-long", {"question": "go on"})
    wait_until(lambda: any(n["node"] == "llm" for n in stack.run(run["id"])["node_runs"]), timeout=120,
               message="generator started")
    asked = time.monotonic()
    response = stack.api("POST", f"/api/v1/runs/{run['id']}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    done = stack.wait_state(run["id"], {"cancelled", "succeeded", "failed"}, timeout=60)
    assert done["state"] == "cancelled", done
    assert time.monotonic() - asked < 10  # the whole chain takes far longer than this
    llm_rows = [n for n in done["node_runs"] if n["node"].startswith("llm")]
    assert 1 <= len(llm_rows) < 8  # stopped partway through the chain of eight generators
    again = stack.api("POST", f"/api/v1/runs/{run['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]
    # The worker is free again.
    stack.create("greet-after-cancel", greet())
    assert stack.start_run("greet-after-cancel", {"name": "after"}, wait=30)["state"] == "succeeded"


def test_list_runs_filters_by_workflow_and_state(stack: Stack, worker):
    stack.create("greet-list", greet())
    for name in ("a", "b"):
        stack.start_run("greet-list", {"name": name}, wait=30)
    listed = stack.api("GET", "/api/v1/runs", params={"workflow_id": "greet-list", "state": "succeeded"}).json()
    assert sorted(r["inputs"]["name"] for r in listed) == ["a", "b"]
    bad = stack.api("GET", "/api/v1/runs", params={"state": "exploded"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "query.state"
