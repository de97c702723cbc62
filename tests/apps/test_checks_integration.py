"""The publish check on real processes (web + worker, the embedded default): a version goes live only after
it answered a test message on a worker; one whose model cannot load is refused naming the node and the fix,
unless the admin forces it, and then the app carries the warning."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from apps.checks import SKIPPED
from tests.support.specs import chat, greet
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.integration]
ROLES = {"stackyard": {"chat": {"message": "question", "reply": "answer"}}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("publish-check")
    unused = root / "no-model"  # neither workflow loads a model this test made
    gen = process_stack("embedded", root, unused, unused)
    stack = next(gen)
    stack.start_web()
    stack.create("greet", {**greet(), "metadata": {"stackyard": {"chat": {"message": "name", "reply": "greeting"}}}})
    stack.create("missing-model", {**chat("nowhere/no-such-model"), "metadata": ROLES})
    yield stack
    for _ in gen:
        pass


def publish(stack: Stack, workflow: str, slug: str, **extra) -> httpx.Response:
    return stack.api("POST", "/api/v1/publications", json={"workflow": workflow, "slug": slug, **extra})


def published(stack: Stack) -> dict[str, dict]:
    return {p["slug"]: p for p in stack.api("GET", "/api/v1/publications").json()}


def test_a_version_goes_live_only_once_it_answered_on_a_worker(stack: Stack):
    started = time.monotonic()
    refused = publish(stack, "greet", "hello")  # no worker yet: said at once, not after a timeout
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "check", refused.text
    assert "no worker serves the 'cpu' queue" in refused.json()["error"]["message"]
    assert "stackyard worker --queues cpu" in refused.json()["error"]["message"]
    assert time.monotonic() - started < 10 and "hello" not in published(stack)

    worker = stack.start_worker(queues="cpu,gpu", name="worker-check")
    try:
        live = publish(stack, "greet", "hello")
        assert live.status_code == 201, live.text
        assert live.json()["check_warning"] is None

        broken = publish(stack, "missing-model", "broken")
        assert broken.status_code == 422, broken.text
        message = broken.json()["error"]["message"]
        assert "Node 'llm' cannot load model 'nowhere/no-such-model'" in message and "STACKYARD_MODEL_PATHS" in message
        assert "publish anyway (force)" in message and "broken" not in published(stack)

        forced = publish(stack, "missing-model", "broken", force=True)
        assert forced.status_code == 201, forced.text
        assert "Published although its check failed" in forced.json()["check_warning"]
        assert "cannot load model" in published(stack)["broken"]["check_warning"]
        page = stack.api("GET", "/chat/broken", follow_redirects=True)
        assert page.status_code == 200

        unchecked = publish(stack, "greet", "unchecked", check=False)
        assert unchecked.status_code == 201 and unchecked.json()["check_warning"] == SKIPPED
    finally:
        stack.discard(worker)
