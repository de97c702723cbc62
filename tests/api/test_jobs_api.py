"""``/api/v1/jobs`` and ``/api/v1/schedules`` over HTTP (no worker): pinned versions, ETA, the schedule
endpoints, and bad input answered with a 4xx that names the field and stores nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"


def greet(template: str) -> dict:
    return {"components": {"p": {"type": PROMPT, "init_parameters": {"template": template}}},
            "inputs": {"name": ["p.name"]}, "outputs": {"greeting": "p.prompt"}}


@pytest.fixture
def client(database):
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        assert test_client.post("/api/v1/workflows", json={"name": "greet", "spec": greet("Hi {{ name }}")}).status_code == 201
        assert test_client.post("/api/v1/workflows/greet/versions", json={"spec": greet("Hello {{ name }}")}).status_code == 201
        yield test_client


def csv(count: int) -> dict:
    return {"type": "csv", "data": "name\n" + "".join(f"n{i}\n" for i in range(count))}


def test_a_job_stays_on_the_version_it_was_created_with(client):
    versions = {v["number"]: v["id"] for v in client.get("/api/v1/workflows/greet/versions").json()}
    pinned = client.post("/api/v1/jobs", json={"workflow": "greet", "version": 1, "source": csv(2)})
    newest = client.post("/api/v1/jobs", json={"workflow": "greet", "source": csv(2)})
    assert pinned.status_code == newest.status_code == 201
    assert pinned.json()["version_id"] == versions[1] and newest.json()["version_id"] == versions[2]
    client.post("/api/v1/workflows/greet/versions", json={"spec": greet("Yo {{ name }}")})
    assert client.get(f"/api/v1/jobs/{pinned.json()['id']}").json()["version_id"] == versions[1]


def test_eta_extrapolates_from_the_items_finished_so_far(client):
    from sqlmodel import select

    from jobs import lifecycle as jobs
    from jobs.models import ItemState, Job, JobItem, JobState
    from store.clock import utcnow
    from store.db import session_scope

    job_id = client.post("/api/v1/jobs", json={"workflow": "greet", "source": csv(6)}).json()["id"]
    now = utcnow()
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.state, job.started_at = JobState.RUNNING, now - timedelta(seconds=10)
        items = session.exec(select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.item_index)).all()
        for item, state in zip(items, (ItemState.SUCCEEDED, ItemState.FAILED)):
            item.state = state
        session.commit()
        progress = jobs.progress(session=session, jobs=[session.get(Job, job_id)], now=now)[job_id]
    assert progress.eta_seconds == pytest.approx(20.0)  # 2 of 6 finished in 10 s → 4 more take 20 s
    shown = client.get(f"/api/v1/jobs/{job_id}").json()
    assert (shown["done"], shown["failed"], shown["total"]) == (1, 1, 6) and 15 < shown["eta_seconds"] < 30


@pytest.mark.parametrize(("body", "field"), [
    ({"workflow": "greet", "source": {"type": "csv", "data": "wrong\nx\n"}}, "name"),
    ({"workflow": "greet", "source": {"type": "files", "paths": ["../etc"]}}, "paths"),
    ({"workflow": "nope", "source": csv(1)}, "nope"),
    ({"workflow": "greet", "version": 9, "source": csv(1)}, "9"),
    ({"workflow": "greet", "source": csv(1), "concurrency": 0}, "concurrency"),
])
def test_a_bad_job_is_refused_by_field_and_stores_nothing(client, body, field):
    response = client.post("/api/v1/jobs", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.text
    assert client.get("/api/v1/jobs").json() == []


def nested(depth: int) -> str:
    """An object (one level) holding arrays nested ``depth - 1`` levels: ``depth`` levels in all."""
    return '{"name": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("depth", [65, 900, 200_000])
def test_a_deeply_nested_jsonl_line_is_refused_naming_the_line_and_the_limit(client, depth):
    data = '{"name": "x"}\n' + nested(depth) + "\n"
    inline = client.post("/api/v1/jobs", json={"workflow": "greet", "source": {"type": "jsonl", "data": data}})
    uploaded = client.post("/api/v1/jobs", files={"file": ("items.jsonl", data, "application/x-ndjson")},
                           data={"job": '{"workflow": "greet"}'})
    for response in (inline, uploaded):
        assert response.status_code == 422, response.text[:300]
        error = response.json()["error"]
        assert error["field"] == "source.data"
        assert "JSONL line 2" in error["message"] and "more than 64 levels" in error["message"]
    assert client.get("/api/v1/jobs").json() == []


@pytest.mark.parametrize("depth", [65, 900, 200_000])
def test_a_deeply_nested_job_part_is_refused_naming_the_part_and_the_limit(client, depth):
    response = client.post("/api/v1/jobs", files={"file": ("items.jsonl", '{"name": "x"}\n', "application/x-ndjson")},
                           data={"job": '{"workflow": "greet", "fixed": ' + nested(depth - 1) + "}"})
    assert response.status_code == 422, response.text[:300]
    error = response.json()["error"]
    assert error["field"] == "job" and "'job' part" in error["message"] and "more than 64 levels" in error["message"]
    assert client.get("/api/v1/jobs").json() == []


def test_json_nested_up_to_the_limit_is_accepted(client):
    line = nested(64) + "\n"
    response = client.post("/api/v1/jobs", json={"workflow": "greet", "source": {"type": "jsonl", "data": line}})
    assert response.status_code == 201, response.text[:300]
    response = client.post("/api/v1/jobs", files={"file": ("items.jsonl", '{"name": "x"}\n', "application/x-ndjson")},
                           data={"job": '{"workflow": "greet", "fixed": ' + nested(63) + "}"})
    assert response.status_code == 201, response.text[:300]


def test_schedules_preview_list_pause_resume_delete(client):
    preview = client.get("/api/v1/schedules/preview", params={"cron": "30 9 * * 1", "timezone": "Europe/Paris", "count": 3})
    assert preview.status_code == 200
    fires = [datetime.fromisoformat(t) for t in preview.json()]
    assert len(fires) == 3 and all(f.weekday() == 0 and (f.hour, f.minute) == (9, 30) for f in fires)
    assert fires == sorted(fires) and fires[1] - fires[0] == timedelta(days=7)

    body = {"name": "weekly", "workflow": "greet", "version": 1, "source": csv(3), "cron": "30 9 * * 1",
            "timezone": "Europe/Paris"}
    created = client.post("/api/v1/schedules", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1 and len(created.json()["next_fires"]) == 5
    assert [s["name"] for s in client.get("/api/v1/schedules").json()] == ["weekly"]
    assert client.post("/api/v1/schedules/weekly/pause").json()["state"] == "paused"
    assert client.post("/api/v1/schedules/weekly/resume").json()["state"] == "active"
    assert client.get("/api/v1/schedules/weekly/fires").json() == []
    assert client.delete("/api/v1/schedules/weekly").status_code == 204
    assert client.get("/api/v1/schedules/weekly").status_code == 404
    assert client.get("/api/v1/schedules").json() == []


@pytest.mark.parametrize(("change", "field"), [
    ({"cron": "61 * * * *"}, "cron"),
    ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ({"source": {"type": "csv", "data": "wrong\nx\n"}}, "name"),
])
def test_a_bad_schedule_is_refused_by_field_and_stores_nothing(client, change, field):
    body = {"name": "bad", "workflow": "greet", "source": csv(1), "cron": "* * * * *", **change}
    response = client.post("/api/v1/schedules", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.text
    assert client.get("/api/v1/schedules").json() == []
    assert client.get("/api/v1/schedules/preview", params={"cron": body["cron"], "timezone": body.get("timezone", "UTC")}
                      ).status_code == (200 if "cron" not in change and "timezone" not in change else 422)
