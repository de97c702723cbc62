"""A secret that an LLM server echoes back never reaches a run's record or the API (real web + worker).

The in-test OpenAI-compatible server answers 401 quoting the request's ``Authorization`` header, so the
OpenAI client's exception carries the key: the run's error, a job item's error and the API must show ``***``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.openai_server import ChatServer
from tests.support.specs import remote_chat
from tests.support.stack import REDIS_DB, REDIS_URL, Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "sk-test-secret-5b7e19c4d2"


@pytest.fixture(scope="module")
def echoing_llm() -> Iterator[ChatServer]:
    with ChatServer(echo_auth_error=True) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, echoing_llm: ChatServer) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("secrets")
    redis.Redis.from_url(f"{REDIS_URL}/{REDIS_DB}").flushdb()
    # As a deploy env file does: every service gets the key; the operator admits the local LLM server.
    stack = Stack(root=root, database_url=f"sqlite:///{root / 'data' / 'stackyard.db'}",
                  broker_url=f"{REDIS_URL}/{REDIS_DB}",
                  extra_env={"OPENAI_API_KEY": KEY, "STACKYARD_FETCH_ALLOWED_HOSTS": "127.0.0.1"})
    try:
        stack.start_web()
        worker = stack.start_worker(queues="cpu", name="worker-secrets")
        stack.create("leaky-llm", remote_chat(echoing_llm.base_url, key_env="OPENAI_API_KEY"))
        yield stack
        stack.discard(worker)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def failed_run(stack: Stack) -> dict:
    done = stack.start_run("leaky-llm", {"question": "hi"}, wait=60)
    assert done["state"] == "failed", done
    return done


def test_the_key_the_server_echoed_is_masked_in_the_runs_error(stack: Stack, echoing_llm: ChatServer, failed_run: dict):
    assert f"Bearer {KEY}" in echoing_llm.authorizations  # the key really went out and came back in the error
    assert "Incorrect API key provided: Bearer ***" in failed_run["error"] and KEY not in failed_run["error"]
    fetched = stack.api("GET", f"/api/v1/runs/{failed_run['id']}")
    assert fetched.json()["error"] == failed_run["error"]


def test_no_api_response_about_the_run_carries_the_key(stack: Stack, failed_run: dict):
    assert [node["state"] for node in failed_run["node_runs"]] == ["done", "failed"]
    assert KEY not in stack.api("GET", f"/api/v1/runs/{failed_run['id']}").text


def test_a_job_items_error_is_masked_too(stack: Stack):
    response = stack.api("POST", "/api/v1/jobs", json={"workflow": "leaky-llm",
                                                       "source": {"type": "single", "inputs": {"question": "hi"}}})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    wait_until(lambda: stack.api("GET", f"/api/v1/jobs/{job_id}").json()["state"] == "failed", timeout=60,
               message="the job to fail")
    (item,) = stack.api("GET", f"/api/v1/jobs/{job_id}/items").json()
    assert "Bearer ***" in item["error"]
    assert KEY not in stack.api("GET", f"/api/v1/jobs/{job_id}/items").text
