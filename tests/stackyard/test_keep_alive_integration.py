"""Keep-alive connections are never dropped mid-request: the web server keeps an idle connection longer
than clients and load balancers do, so a request sent on a connection idle for a few seconds is answered.

``http.client`` reuses a connection without first checking whether the server closed it, as load
balancers and many clients do; with uvicorn's default 5 s keep-alive every such request was lost.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.specs import greet
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration]

CONNECTIONS = 40
IDLE_SECONDS = 6.0  # past uvicorn's default 5 s, well inside the 75 s Stackyard sets


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = Path(tmp_path_factory.mktemp("keep-alive"))
    stack = Stack(root=root, database_url=f"sqlite:///{root / 'data' / 'stackyard.db'}",
                  broker_url=f"sqla+sqlite:///{root / 'data' / 'broker.db'}")
    try:
        stack.start_web()
        stack.create("greet", greet())
        yield stack
    finally:
        stack.stop()


def post_run(conn: http.client.HTTPConnection) -> str:
    """Start a run on this connection; its outcome, or the transport error that lost it."""
    try:
        conn.request("POST", "/api/v1/workflows/greet/runs", body=json.dumps({"inputs": {"name": "Ada"}}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return str(response.status)
    except (http.client.HTTPException, OSError) as exc:
        return type(exc).__name__


def test_requests_on_connections_idle_for_seconds_are_all_answered(stack: Stack):
    connections = [http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60) for _ in range(CONNECTIONS)]
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(post_run, connections))
        time.sleep(IDLE_SECONDS)
        second = list(pool.map(post_run, connections))
    for conn in connections:
        conn.close()
    assert first == ["202"] * CONNECTIONS
    assert second == ["202"] * CONNECTIONS, {outcome: second.count(outcome) for outcome in set(second)}
    assert len(stack.api("GET", "/api/v1/runs", params={"limit": 200}).json()) == 2 * CONNECTIONS
