"""``/metrics`` on SQLite and PostgreSQL: cluster figures from the database, request latency per route."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
GREET = {"components": {"p": {"type": PROMPT, "init_parameters": {"template": "Hello {{ name }}"}}},
         "inputs": {"name": ["p.name"]}, "outputs": {"greeting": "p.prompt"}}


@pytest.fixture
def client(database, monkeypatch):
    from api.app import create_app
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("STACKYARD_METRICS_CACHE_SECONDS", "0")
    reset_settings_cache()
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def add_runs(workflow_id: str, version_id: str) -> None:
    """Three finished runs of 0.2 s, 3 s and 40 s (two succeeded, one failed), one queued, with node traces."""
    from runs.models import NodeRun, Run, RunState
    from store.clock import utcnow
    from store.db import session_scope

    start = utcnow() - timedelta(minutes=5)
    with session_scope() as session:
        for seconds, state, loads in ((0.2, RunState.SUCCEEDED, 1), (3.0, RunState.SUCCEEDED, 0),
                                      (40.0, RunState.FAILED, 2)):
            run = Run(workflow_id=workflow_id, version_id=version_id, state=state, model_loads=loads,
                      started_at=start, finished_at=start + timedelta(seconds=seconds))
            session.add(run)
            session.flush()
            session.add(NodeRun(run_id=run.id, node="p", component_type=PROMPT, state="succeeded",
                                duration_ms=seconds * 500))
        session.add(Run(workflow_id=workflow_id, version_id=version_id))
        session.commit()


def test_metrics_report_runs_durations_and_loads(client):
    created = client.post("/api/v1/workflows", json={"name": "greet", "spec": GREET}).json()
    version = client.get("/api/v1/workflows/greet/versions/1").json()
    empty = scrape(client)
    assert empty[("stackyard_runs", (("state", "succeeded"),))] == 0  # every state present before any run
    assert empty[("stackyard_database_up", ())] == 1 and empty[("stackyard_broker_up", ())] == 1
    assert {("stackyard_queue_depth", (("queue", q),)) for q in ("cpu", "gpu")} <= set(empty)  # counted in the next test

    add_runs(created["id"], version["id"])
    found = scrape(client)
    assert found[("stackyard_runs", (("state", "succeeded"),))] == 2
    assert found[("stackyard_runs", (("state", "failed"),))] == 1
    assert found[("stackyard_runs", (("state", "queued"),))] == 1
    assert found[("stackyard_model_loads_total", ())] == 3
    ok = (("state", "succeeded"),)
    assert found[("stackyard_run_duration_seconds_count", ok)] == 2
    assert found[("stackyard_run_duration_seconds_sum", ok)] == pytest.approx(3.2, abs=0.01)
    assert found[("stackyard_run_duration_seconds_bucket", (("le", "0.25"), *ok))] == 1
    assert found[("stackyard_run_duration_seconds_bucket", (("le", "5.0"), *ok))] == 2
    failed = (("le", "30.0"), ("state", "failed"))
    assert found[("stackyard_run_duration_seconds_bucket", failed)] == 0
    assert found[("stackyard_run_duration_seconds_bucket", (("le", "+Inf"), ("state", "failed")))] == 1
    node = (("component", PROMPT),)
    assert found[("stackyard_node_duration_seconds_count", node)] == 3
    for bound, expected in (("0.05", 0), ("0.1", 1), ("2.5", 2), ("10.0", 2), ("30.0", 3)):  # 0.1 s, 1.5 s, 20 s
        assert found[("stackyard_node_duration_seconds_bucket", (("component", PROMPT), ("le", bound)))] == expected


def test_request_latency_is_labelled_by_route_template(client):
    client.post("/api/v1/workflows", json={"name": "greet", "spec": GREET})
    for ref in ("greet", "missing-one", "missing-two"):
        client.get(f"/api/v1/workflows/{ref}")
    found = scrape(client)
    route = "/api/v1/workflows/{ref}"
    count = "stackyard_http_request_duration_seconds_count"
    assert found[(count, (("method", "GET"), ("route", route), ("status", "200")))] == 1
    assert found[(count, (("method", "GET"), ("route", route), ("status", "404")))] == 2  # one series, not one per id
    assert found[(count, (("method", "POST"), ("route", "/api/v1/workflows"), ("status", "201")))] == 1


def test_metrics_need_no_login(database, monkeypatch):
    from api.app import create_app
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("STACKYARD_ADMIN_PASSWORD", "s3cret-pass")
    reset_settings_cache()
    with TestClient(create_app()) as client:
        assert client.get("/api/v1/workflows").status_code == 401
        assert client.get("/metrics").status_code == 200


def test_queue_depth_counts_messages_nobody_has_taken(client):
    """No worker runs here: each run posted stays in the broker, and the gauge reads the real queue."""
    client.post("/api/v1/workflows", json={"name": "greet", "spec": GREET})
    earlier = scrape(client)   # the broker is the process's: other tests' messages may wait in it
    before, gpu = (earlier[("stackyard_queue_depth", (("queue", name),))] for name in ("cpu", "gpu"))
    for name in ("Ada", "Grace", "Edsger"):
        assert client.post("/api/v1/workflows/greet/runs", json={"inputs": {"name": name}}).status_code == 202
    found = scrape(client)
    assert found[("stackyard_queue_depth", (("queue", "cpu"),))] == before + 3
    assert found[("stackyard_queue_depth", (("queue", "gpu"),))] == gpu
