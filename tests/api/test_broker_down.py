"""A web process whose broker is unreachable: starting a run answers 503 naming the fix and leaves no run
queued forever (real web process on PostgreSQL; the broker URL points at a port nobody listens on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.specs import greet
from tests.support.stack import Stack, free_port, postgres_stack

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with postgres_stack(Path(tmp_path_factory.mktemp("broker-down")),
                        broker_url=f"redis://127.0.0.1:{free_port()}/0") as stack:
        stack.start_web()
        stack.create("greet", greet())
        yield stack


def test_a_run_that_cannot_be_queued_is_failed_and_the_caller_told(stack: Stack):
    response = stack.api("POST", "/api/v1/workflows/greet/runs", json={"inputs": {"name": "Ada"}})
    assert response.status_code == 503, response.text
    message = response.json()["error"]["message"]
    assert "could not be queued" in message and "STACKYARD_BROKER_URL" in message
    listed = stack.api("GET", "/api/v1/runs").json()
    assert [(r["state"], r["error"].startswith("could not be queued")) for r in listed] == [("failed", True)]
    assert stack.api("GET", "/readyz").status_code == 503       # the probe says the same


def test_documents_that_cannot_be_queued_are_failed_and_can_be_retried_later(stack: Stack):
    assert stack.api("POST", "/api/v1/knowledge-bases", json={"name": "handbook"}).status_code == 201
    response = stack.api("POST", "/api/v1/knowledge-bases/handbook/documents",
                         json={"texts": [{"name": "a", "text": "one"}, {"name": "b", "text": "two"}]})
    assert response.status_code == 503 and "2 document(s) could not be queued" in response.text
    listed = stack.api("GET", "/api/v1/knowledge-bases/handbook/documents").json()
    assert [(d["state"], d["error"].startswith("could not be queued")) for d in listed] == [("error", True)] * 2
    retried = stack.api("POST", f"/api/v1/knowledge-bases/handbook/documents/{listed[0]['id']}/retry")
    assert retried.status_code == 503    # still no broker: failed again, not left queued
    assert stack.api("GET", "/api/v1/knowledge-bases/handbook").json()["counts"]["queued"] == 0
