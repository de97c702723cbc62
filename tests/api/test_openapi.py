"""``/openapi.json`` tells the truth: each route documents the errors it answers in the shape they have, the
bodies routes read by hand (jobs as JSON or multipart, chat completions, YAML), the YAML export, the API key
scheme; and a method a path does not serve answers 405 with Allow although the web UI is mounted at "/"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
OPENAI_ERROR = {"$ref": "#/components/schemas/OpenAIErrorResponse"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from stackyard.settings import reset_settings_cache
    from stackyard.web import create_app

    patch = pytest.MonkeyPatch()
    patch.setenv("STACKYARD_DATA_DIR", str(tmp_path_factory.mktemp("openapi")))
    patch.delenv("STACKYARD_DATABASE_URL", raising=False)
    reset_settings_cache()
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        patch.undo()
        reset_settings_cache()


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict:
    return client.get("/openapi.json").json()


def _schema(response: dict, media: str = "application/json") -> dict:
    return response["content"][media]["schema"]


def test_every_error_response_has_the_shape_the_api_answers_in(spec):
    documented = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith(("4", "5")) or path == "/readyz":
                    continue
                documented += 1
                schema = _schema(response)
                if not path.startswith("/v1/"):
                    assert schema == ERROR, f"{method} {path} {status}"
                elif status == "415":  # refused by the cross-site guard before the OpenAI-shaped route runs
                    assert schema == ERROR, f"{method} {path} {status}"
                else:
                    assert OPENAI_ERROR in schema.get("anyOf", [schema]), f"{method} {path} {status}"
    assert documented > 200
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert detail["required"] == ["message", "type"] and {"field", "issues"} <= set(detail["properties"])


def test_the_errors_a_route_answers_are_documented(client, spec):
    missing = client.get("/api/v1/workflows/nope")
    assert missing.status_code == 404 and "404" in spec["paths"]["/api/v1/workflows/{ref}"]["get"]["responses"]
    bad = client.post("/api/v1/workflows", content="name=x", headers={"content-type": "text/plain"})
    assert bad.status_code == 415 and "415" in spec["paths"]["/api/v1/workflows"]["post"]["responses"]
    assert "503" in spec["paths"]["/api/v1/workflows/{ref}/runs"]["post"]["responses"]  # broker down
    assert "502" in spec["paths"]["/v1/chat/completions"]["post"]["responses"]  # the run failed


def test_a_broken_multipart_body_is_a_400_in_the_api_error_shape(client, spec):
    # Starlette's own parser refuses it (the fuzzer found its {"detail": ...} body, which no route documents).
    broken = client.post("/api/v1/jobs", content=b"--b\r\nnot a part header\r\n--b--\r\n",
                         headers={"content-type": "multipart/form-data; boundary=b"})
    assert broken.status_code == 400 and "400" in spec["paths"]["/api/v1/jobs"]["post"]["responses"]
    assert broken.json()["error"]["type"] == "RequestInvalid" and broken.json()["error"]["message"], broken.text
    assert client.get("/no-such-ui-page", headers={"Accept": "text/html"}).status_code != 500   # the UI is untouched


def test_bodies_read_by_hand_are_documented(spec):
    job = spec["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]
    assert job["application/json"]["schema"]["required"] == ["workflow", "source"]
    assert "$ref" not in str(job["application/json"]["schema"])  # self-contained: no $defs to resolve
    upload = job["multipart/form-data"]["schema"]
    assert upload["required"] == ["file", "job"] and upload["properties"]["file"]["format"] == "binary"
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["required"] == ["model", "messages"]
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert "application/yaml" in spec["paths"]["/api/v1/workflows/import"]["post"]["requestBody"]["content"]
    run_app = spec["paths"]["/api/v1/apps/{slug}/run"]["post"]
    assert run_app["requestBody"]["required"] is False and run_app["security"] == [{"apiKey": []}]
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_the_export_is_documented_as_yaml(client, spec):
    export = spec["paths"]["/api/v1/workflows/{ref}/export"]["get"]["responses"]
    assert list(export["200"]["content"]) == ["application/yaml"]
    assert list(export["404"]["content"]) == ["application/json"]  # its errors are JSON, like every route's
    results = spec["paths"]["/api/v1/jobs/{job_id}/results"]["get"]["responses"]["200"]["content"]
    assert set(results) == {"text/csv", "application/x-ndjson"}


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/api/v1/workflows", "GET, POST"),
    ("TRACE", "/healthz", "GET"),
    ("GET", "/api/v1/editor/files", "POST"),  # a route the editor adds after the API's
    ("DELETE", "/v1/chat/completions", "POST"),
])
def test_a_method_a_path_does_not_serve_is_405_not_the_ui_404(client, method, path, allow):
    response = client.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allow, response.text
    assert response.json()["error"]["type"] == "MethodNotAllowed"


def test_the_ui_still_answers_its_own_paths(client):
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/workflows").status_code == 200
