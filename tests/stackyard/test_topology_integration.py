"""The production topology on one machine: `stackyard web`, two `stackyard worker`s and `stackyard beat` as
separate processes on Redis + PostgreSQL, with JSON logs, as deploy/ runs them.

One chat call through the OpenAI client, one batch job and one scheduled tick, all green; then
``/metrics`` shows their counts and the JSON log lines follow a run from the web process to a worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.specs import chat, greet
from tests.support.stack import REDIS_URL, Stack, model_paths_env, postgres_stack, redis_db, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = redis_db(7)
TINY = "stackyard-test/tiny-chat"


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Stack]:
    from store.db import migrate

    redis.Redis.from_url(f"{REDIS_URL}/{REDIS_DB}").flushdb()
    with postgres_stack(tmp_path_factory.mktemp("topology"), broker_url=f"{REDIS_URL}/{REDIS_DB}", extra_env={
            **model_paths_env({TINY: tiny_model}), "STACKYARD_LOG_FORMAT": "json",
            "STACKYARD_METRICS_CACHE_SECONDS": "0"}) as stack:
        migrate(stack.database_url)  # as the deploy/ migrate job does, before anything starts
        stack.files_root.mkdir(parents=True, exist_ok=True)
        stack.web = stack._spawn(["web", "--port", str(stack.port)], "web.log")
        procs = {"worker-cpu": stack._spawn(["worker", "--queues", "cpu", "--concurrency", "2"], "worker-cpu.log"),
                 "worker-gpu": stack._spawn(["worker", "--queues", "gpu", "--concurrency", "1"], "worker-gpu.log")}
        procs["beat"] = stack._spawn(["beat"], "beat.log")
        for name, proc in procs.items():
            log = stack.root / f"{name}.log"
            wait_until(lambda: log.exists() and b" ready." in log.read_bytes() or stack._dead(proc, log),
                       timeout=120, message=f"{name} ready (see {log})")
        wait_until(stack._web_up, timeout=90, message=f"web server (see {stack.root / 'web.log'})")
        yield stack


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def metrics(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{stack.base_url}/metrics", timeout=30).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_chat_job_and_tick_across_processes_show_in_metrics_and_logs(topology: Stack):
    stack = topology
    spec = chat(TINY)
    spec["metadata"] = {"stackyard": {"chat": {"message": "question", "reply": "answer"}}}
    stack.create("prod-chat", spec)
    stack.create("prod-greet", greet())
    assert stack.api("POST", "/api/v1/publications", json={"workflow": "prod-chat", "slug": "prod",
                                                              "check": False}).status_code == 201
    key = stack.api("POST", "/api/v1/keys", json={"name": "ops", "app": "prod"}).json()["key"]

    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0, timeout=120)
    reply = client.chat.completions.create(model="prod", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "the answer is stackyard"

    rows = "".join(f"p{i}\n" for i in range(40))
    job = stack.api("POST", "/api/v1/jobs", json={"workflow": "prod-greet", "concurrency": 4,
                                                   "source": {"type": "csv", "data": f"name\n{rows}"}}).json()
    done = wait_until(lambda: (j := stack.api("GET", f"/api/v1/jobs/{job['id']}").json())["state"] == "succeeded"
                      and j, timeout=120, interval=0.3, message="the batch job")
    assert (done["done"], done["failed"]) == (40, 0)

    schedule = stack.api("POST", "/api/v1/schedules", json={
        "name": "tick", "workflow": "prod-greet", "cron": "* * * * * */2", "timezone": "UTC",
        "source": {"type": "single", "inputs": {"name": "tick"}}})
    assert schedule.status_code == 201, schedule.text
    fired = wait_until(lambda: [f for f in stack.api("GET", "/api/v1/schedules/tick/fires").json()
                                if f.get("job_id")], timeout=30, message="a scheduled tick")
    assert stack.api("POST", "/api/v1/schedules/tick/pause").status_code == 200
    tick_job = fired[0]["job_id"]
    wait_until(lambda: stack.api("GET", f"/api/v1/jobs/{tick_job}").json()["state"] == "succeeded", timeout=60,
               message="the tick's job")

    found = metrics(stack)
    assert found[("stackyard_runs", (("state", "succeeded"),))] == 1     # the chat call
    assert found[("stackyard_runs", (("state", "failed"),))] == 0
    assert found[("stackyard_job_items", (("state", "succeeded"),))] >= 41  # 40 rows + the tick's item
    assert found[("stackyard_job_item_duration_seconds_count", (("state", "succeeded"),))] >= 41
    assert found[("stackyard_schedule_fires", (("state", "fired"),))] >= 1
    assert found[("stackyard_workers", (("queue", "cpu"),))] == 1
    assert found[("stackyard_workers", (("queue", "gpu"),))] == 1  # the local model routed the chat run there
    assert found[("stackyard_model_loads_total", ())] == 1
    assert found[("stackyard_run_duration_seconds_count", (("state", "succeeded"),))] == 1
    assert found[("stackyard_queue_depth", (("queue", "cpu"),))] == 0
    chat_calls = ("stackyard_http_request_duration_seconds_count",
                  (("method", "POST"), ("route", "/v1/chat/completions"), ("status", "200")))
    assert found[chat_calls] == 1

    run_id = stack.api("GET", "/api/v1/runs").json()[0]["id"]
    web = [line for line in json_lines(stack.root / "web.log") if line.get("run_id") == run_id]
    assert any(line["message"].startswith(f"run {run_id} queued") for line in web)
    worked = [line for line in json_lines(stack.root / "worker-gpu.log") if line.get("run_id") == run_id]
    assert any(line["message"].startswith(f"run {run_id} succeeded") for line in worked)
    assert all(line["level"] in {"DEBUG", "INFO", "WARNING", "ERROR"} for line in web + worked)
