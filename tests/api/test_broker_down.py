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
