"""Every integer a request carries is bounded to what its column holds: out of range is a 422 naming the
field, never a 500 from the database (PostgreSQL's INTEGER stops at 2**31 - 1; SQLite would not notice)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
GREET = {"components": {"p": {"type": PROMPT, "init_parameters": {"template": "Hello {{ name }}"}}},
         "inputs": {"name": ["p.name"]}, "outputs": {"greeting": "p.prompt"}}
TOO_BIG = 2**31
SOURCE = {"type": "single", "inputs": {"name": "Ada"}}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    """One PostgreSQL database for the module: every case here is refused before it changes anything."""
    from api.app import create_app
    from stackyard.settings import reset_settings_cache
    from tests.support.stack import postgres_database

    with postgres_database() as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("STACKYARD_DATA_DIR", str(tmp_path_factory.mktemp("bounds")))
        patch.setenv("STACKYARD_DATABASE_URL", url)
        reset_settings_cache()
        try:
            with TestClient(create_app(), raise_server_exceptions=False) as test_client:
                assert test_client.post("/api/v1/workflows", json={"name": "greet", "spec": GREET}).status_code == 201
                job = test_client.post("/api/v1/jobs", json={"workflow": "greet", "source": SOURCE})
                assert job.status_code == 201, job.text
                test_client.job_id = job.json()["id"]
                yield test_client
        finally:
            reset_settings_cache()


def _cases() -> list:
    """(field as the error names it, bad values, method, path, request kwargs for one value)."""
    job = {"workflow": "greet", "source": SOURCE}
    schedule = {**job, "name": "nightly", "cron": "0 3 * * *"}
    publish = {"workflow": "greet", "slug": "greeter", "message": "name", "reply": "greeting"}
    return [
        ("path.number", (TOO_BIG, 0, -1), "get", "/api/v1/workflows/greet/versions/{v}", lambda v: {}),
        ("query.version", (TOO_BIG, 0, -1), "get", "/api/v1/workflows/greet/export", lambda v: {"params": {"version": v}}),
        ("version", (TOO_BIG, 0, -1), "post", "/api/v1/workflows/greet/runs", lambda v: {"json": {"version": v}}),
        ("version", (TOO_BIG, 0, -1), "post", "/api/v1/jobs", lambda v: {"json": {**job, "version": v}}),
        ("version", (TOO_BIG, 0), "post", "/api/v1/jobs", lambda v: {  # a multipart upload's job part
            "files": {"file": ("q.csv", b"name\nAda\n", "text/csv")},
            "data": {"job": f'{{"workflow": "greet", "version": {v}}}'}}),
        ("concurrency", (TOO_BIG, 0), "post", "/api/v1/jobs", lambda v: {"json": {**job, "concurrency": v}}),
        ("version", (TOO_BIG, 0, -1), "post", "/api/v1/schedules", lambda v: {"json": {**schedule, "version": v}}),
        ("concurrency", (TOO_BIG, 0), "post", "/api/v1/schedules", lambda v: {"json": {**schedule, "concurrency": v}}),
        ("version", (TOO_BIG, 0, -1), "post", "/api/v1/publications", lambda v: {"json": {**publish, "version": v}}),
        ("max_concurrency", (TOO_BIG, 0), "post", "/api/v1/publications",
         lambda v: {"json": {**publish, "max_concurrency": v}}),
        ("rate_per_minute", (TOO_BIG, 0, -1), "post", "/api/v1/keys", lambda v: {"json": {"rate_per_minute": v}}),
        ("query.after", (TOO_BIG, -2), "get", "/api/v1/jobs/{job}/items", lambda v: {"params": {"after": v}}),
        ("query.limit", (TOO_BIG, 0), "get", "/api/v1/jobs/{job}/items", lambda v: {"params": {"limit": v}}),
        ("query.limit", (TOO_BIG, 0), "get", "/api/v1/jobs", lambda v: {"params": {"limit": v}}),
        ("query.limit", (TOO_BIG, 0), "get", "/api/v1/runs", lambda v: {"params": {"limit": v}}),
        ("query.limit", (TOO_BIG, 0), "get", "/api/v1/schedules/nightly/fires", lambda v: {"params": {"limit": v}}),
        ("query.count", (TOO_BIG, 0), "get", "/api/v1/schedules/preview",
         lambda v: {"params": {"cron": "* * * * *", "count": v}}),
    ]


@pytest.mark.parametrize("field,values,method,path,kwargs", _cases(),
                         ids=[f"{c[2]} {c[3]} {c[0]}" for c in _cases()])
def test_an_out_of_range_integer_is_a_422_naming_the_field(client, field, values, method, path, kwargs):
    for value in values:
        url = path.format(v=value, job=client.job_id)
        response = getattr(client, method)(url, **kwargs(value))
        assert response.status_code == 422, f"{field}={value}: {response.status_code} {response.text}"
        assert response.json()["error"]["field"] == field, response.text


def test_the_largest_integer_a_column_holds_is_accepted(client):
    """The bound is the column's, not tighter: 2**31 - 1 reaches the database and is simply not found."""
    largest = TOO_BIG - 1
    assert client.get(f"/api/v1/workflows/greet/versions/{largest}").status_code == 404
    assert client.get("/api/v1/workflows/greet/export", params={"version": largest}).status_code == 404
    assert client.post("/api/v1/workflows/greet/runs", json={"version": largest}).status_code == 404
    items = client.get(f"/api/v1/jobs/{client.job_id}/items", params={"after": largest})
    assert items.status_code == 200 and items.json() == []


def test_the_openapi_schema_states_the_bounds(client):
    spec = client.get("/openapi.json").json()
    number = next(p for p in spec["paths"]["/api/v1/workflows/{ref}/versions/{number}"]["get"]["parameters"]
                  if p["name"] == "number")
    assert number["schema"]["minimum"] == 1 and number["schema"]["maximum"] == TOO_BIG - 1
    run_version = spec["components"]["schemas"]["RunCreate"]["properties"]["version"]["anyOf"][0]
    assert run_version["maximum"] == TOO_BIG - 1


@pytest.mark.parametrize("field,method,path,kwargs", [
    ("path.ref", "get", "/api/v1/workflows/a%00b", {}),
    ("path.run_id", "get", "/api/v1/runs/a%00b", {}),
    ("query.workflow_id", "get", "/api/v1/runs", {"params": {"workflow_id": "a\x00b"}}),
    ("query.name", "post", "/api/v1/workflows/import", {"params": {"name": "a\x00b"}, "content": "components: {}",
                                                       "headers": {"content-type": "application/yaml"}}),
    ("name", "post", "/api/v1/workflows", {"json": {"name": "a\x00b"}}),
    ("workflow", "post", "/api/v1/jobs", {"json": {"workflow": "a\x00b", "source": SOURCE}}),
    ("name", "post", "/api/v1/keys", {"json": {"name": "a\x00b"}}),
])
def test_a_string_a_text_column_cannot_hold_is_a_422(client, field, method, path, kwargs):
    """PostgreSQL refuses NUL in text outright: that was a 500 from psycopg for any such lookup or insert."""
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field, response.text


@pytest.mark.parametrize("body", [{"version": True}, {"version": "1"}, {"version": 1.0}, {"wait": False}, {"wait": "1"}])
def test_a_json_number_is_not_a_boolean_or_a_string(client, body):
    """The schema says integer/number: a JSON true or "1" is refused, not read as 1."""
    response = client.post("/api/v1/workflows/greet/runs", json=body)
    assert response.status_code == 422 and response.json()["error"]["field"] == next(iter(body)), response.text
