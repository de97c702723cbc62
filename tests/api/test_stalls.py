"""No request can stall the web process (a real ``stackyard web``): while a hostile definition is validated
or imported, ``/healthz`` keeps answering fast, and the definition is refused quickly with a clear message.

Unchecked, the 25-byte template below cost 5-12 s of big-integer arithmetic inside the async handler (the
GIL held throughout), so every other request waited; a 534-byte YAML of nested aliases was stored as a
multi-megabyte version; 100 000 ``[`` were a 500.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import yaml

from tests.support.stack import Stack, wait_until
from tests.support.workflows import billion_laughs

pytestmark = [pytest.mark.integration]

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
HOSTILE = yaml.safe_dump({"components": {"p": {"type": PROMPT,
                                              "init_parameters": {"template": "{{ (9 ** (9 ** 7)) % 7 }}"}}}})
GREET = yaml.safe_dump({"components": {"p": {"type": PROMPT, "init_parameters": {"template": "Hi {{ name }}"}}},
                        "inputs": {"name": ["p.name"]}})
DEEP = "[" * 100_000
HEALTHZ_BUDGET = 0.2
REFUSAL_BUDGET = 1.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stalls")
    data = root / "data"
    stack = Stack(root=root, database_url=f"sqlite:///{data / 'stackyard.db'}",
                  broker_url=f"sqla+sqlite:///{data / 'broker.db'}")
    try:
        stack.start_web()
        # Warm up: the first validation imports Haystack's components; that is not what is measured here.
        assert post_yaml(stack, "/api/v1/validate", GREET).json()["valid"] is True
        yield stack
    finally:
        stack.stop()


class Heartbeat(threading.Thread):
    """Calls /healthz back to back and keeps the slowest answer."""

    def __init__(self, base_url: str):
        super().__init__(daemon=True)
        self.base_url, self.slowest, self.beats, self.statuses = base_url, 0.0, 0, set()
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as client:
            while not self.done.is_set():
                started = time.perf_counter()
                self.statuses.add(client.get("/healthz").status_code)
                self.slowest = max(self.slowest, time.perf_counter() - started)
                self.beats += 1
                time.sleep(0.01)


def _probed_once(stack: Stack, call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float, Heartbeat]:
    heartbeat = Heartbeat(stack.base_url)
    heartbeat.start()
    wait_until(lambda: heartbeat.beats >= 1, timeout=30, interval=0.005, message="the first /healthz answer")
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    # A refusal can be quicker than two probes on a loaded machine: keep probing until three have answered.
    wait_until(lambda: heartbeat.beats >= 3, timeout=30, interval=0.005, message="three /healthz answers")
    heartbeat.done.set()
    heartbeat.join(timeout=60)
    return response, elapsed, heartbeat


def while_probed(stack: Stack, call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float, Heartbeat]:
    """``call()`` with /healthz probed meanwhile; best of three, since on a shared 2-core machine a probe can
    also wait on the scheduler or a full GC pass. A request that stalls the process stalls every attempt."""
    for _ in range(3):
        response, elapsed, heartbeat = _probed_once(stack, call)
        if heartbeat.slowest < HEALTHZ_BUDGET and elapsed < REFUSAL_BUDGET:
            break
    return response, elapsed, heartbeat


def assert_responsive(elapsed: float, heartbeat: Heartbeat) -> None:
    assert heartbeat.beats >= 3 and heartbeat.statuses == {200}
    assert heartbeat.slowest < HEALTHZ_BUDGET, f"/healthz took {heartbeat.slowest:.3f} s during the request"
    assert elapsed < REFUSAL_BUDGET, f"the hostile definition took {elapsed:.3f} s to refuse"


def post_yaml(stack: Stack, path: str, text: str, **params: str) -> httpx.Response:
    return stack.api("POST", path, params=params, content=text, headers={"content-type": "application/yaml"})


def workflow_names(stack: Stack) -> list[str]:
    return [w["name"] for w in stack.api("GET", "/api/v1/workflows").json()]


def test_validating_a_template_that_folds_a_huge_number(stack: Stack):
    response, elapsed, heartbeat = while_probed(stack, lambda: post_yaml(stack, "/api/v1/validate", HOSTILE))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is False
    issue = body["issues"][0]
    assert (issue["node"], issue["port"], issue["code"]) == ("p", "template", "dangerous_param")
    assert "computes a number/string too large to render" in issue["message"]
    assert_responsive(elapsed, heartbeat)


def test_importing_it_is_refused_and_stores_nothing(stack: Stack):
    response, elapsed, heartbeat = while_probed(
        stack, lambda: post_yaml(stack, "/api/v1/workflows/import", HOSTILE, name="folds"))
    assert response.status_code == 422, response.text
    assert "too large to render" in response.json()["error"]["message"]
    assert_responsive(elapsed, heartbeat)
    assert "folds" not in workflow_names(stack)


def test_billion_laughs_is_refused_and_stores_nothing(stack: Stack):
    text = billion_laughs()
    response, elapsed, heartbeat = while_probed(
        stack, lambda: post_yaml(stack, "/api/v1/workflows/import", text, name="laughs"))
    assert response.status_code == 422, response.text
    assert "drop the anchors" in response.json()["error"]["message"]
    assert_responsive(elapsed, heartbeat)
    assert "laughs" not in workflow_names(stack)
    validated = post_yaml(stack, "/api/v1/validate", text).json()
    assert validated["valid"] is False and validated["issues"][0]["code"] == "parse_error"


@pytest.mark.parametrize("path,status", [("/api/v1/workflows/import", 422), ("/api/v1/validate", 200)])
def test_deep_yaml_is_a_4xx_naming_the_limit(stack: Stack, path: str, status: int):
    response, elapsed, heartbeat = while_probed(stack, lambda: post_yaml(stack, path, DEEP, name="deep"))
    assert response.status_code == status, response.text   # validation answers 200 with the issues
    body = response.json()
    message = body["error"]["message"] if status == 422 else body["issues"][0]["message"]
    assert "more than 64 levels deep" in message and "Flatten" in message
    assert_responsive(elapsed, heartbeat)
    assert "deep" not in workflow_names(stack)


TWENTY_MB = 20 * 1024 * 1024


def _chunks(data: bytes, size: int = 1024 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("path", ["/api/v1/workflows", "/gradio_api/component_server/",
                                  "/chat-app/gradio_api/queue/join", "/chat-app/gradio_api/upload"])
def test_a_twenty_megabyte_body_is_refused_before_it_is_read_and_stores_nothing(stack: Stack, path: str):
    """On the real server, with and without a Content-Length (chunked): the API's bodies, the pages' Gradio
    calls and the public chat page's upload route all stop at their limit with a 413 naming it."""
    body = b'{"name": "huge", "spec": {"pad": "' + b"x" * TWENTY_MB + b'"}}'
    for content in (lambda: body, lambda: _chunks(body)):  # a fresh stream for each of while_probed's tries
        response, elapsed, heartbeat = while_probed(stack, lambda: stack.api(
            "POST", path, content=content(), headers={"content-type": "application/json"}))
        assert response.status_code == 413, response.text[:500]
        message = response.json()["error"]["message"]
        assert "STACKYARD_MAX_BODY_BYTES" in message or "takes no file uploads" in message
        assert heartbeat.statuses == {200} and heartbeat.slowest < HEALTHZ_BUDGET
    assert "huge" not in workflow_names(stack)
