"""Cross-site requests change nothing (api.guard), in-process on the whole app (API, editor, /apps, /jobs,
chat pages), without a password and with the admin's session cookie:

- what another web page can make a browser send (a foreign or ``null`` Origin, another localhost port,
  ``Sec-Fetch-Site: cross-site``/``same-site``) is refused with 403 and stores or starts nothing: imports,
  workflows, jobs (text/plain, form and multipart bodies), runs, deletes, Gradio queue joins and server
  functions, chat completions with a valid API key;
- bodies of the types a form can send are refused on the JSON API with 415, even without an Origin;
- Stackyard's own origin, an origin in STACKYARD_ALLOWED_ORIGINS and scripts (no Origin) are served;
- a Host this server does not answer (DNS rebinding) is refused; localhost, the loopback addresses and the
  address the connection came in on (Kubernetes probes) are served.

The real-process version is ``tests/api/test_cross_site_integration.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.support.specs import greet
from tests.support.web import open_client

PASSWORD = "correct horse battery"
TRUSTED = "http://trusted.example"
OWN = "http://testserver"  # Starlette's TestClient talks to http://testserver
FOREIGN = [{"Origin": "http://evil.example"}, {"Origin": "http://127.0.0.1:8001"}, {"Origin": "http://testserver:8001"},
           {"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
           {"Sec-Fetch-Site": "same-site"}]
JOB = {"workflow": "greet", "source": {"type": "jsonl", "data": '{"name": "Ada"}\n'}}


@dataclass
class Site:
    client: TestClient
    key: str  # an API key for the published app 'greeter'


@pytest.fixture(params=[None, PASSWORD], ids=["no-password", "admin-cookie"])
def site(request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    env = {"STACKYARD_ALLOWED_ORIGINS": TRUSTED, "STACKYARD_ADMIN_PASSWORD": request.param}
    with open_client(monkeypatch, f"sqlite:///{data_dir / 'stackyard.db'}", follow_redirects=False, **env) as client:
        if request.param:
            assert client.post("/login", data={"password": request.param, "next": "/"}).status_code == 303
        assert client.post("/api/v1/workflows", json={"name": "greet", "spec": greet()}).status_code == 201
        published = client.post("/api/v1/publications", json={"workflow": "greet", "slug": "greeter", "message": "name",
                                                               "reply": "greeting", "check": False})
        assert published.status_code == 201, published.text
        yield Site(client, client.post("/api/v1/keys", json={"name": "script"}).json()["key"])


def gradio_join(client: TestClient, page: str, api_name: str, data: list) -> dict[str, Any]:
    dependency = next(d for d in client.get(f"{page}/config").json()["dependencies"] if d["api_name"] == api_name)
    return {"data": data, "fn_index": dependency["id"], "trigger_id": dependency["targets"][0][0],
            "session_hash": "cross-site-test", "event_data": None}


def editor_call(client: TestClient, fn_name: str, data: dict) -> dict[str, Any]:
    config = client.get("/config").json()
    editor = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "stackyard-editor")
    return {"session_hash": "cross-site-test", "component_id": editor["id"], "fn_name": fn_name, "data": data}


def text(body: Any, media: str = "text/plain") -> dict[str, Any]:
    return {"content": body if isinstance(body, str) else json.dumps(body), "headers": {"content-type": media}}


def attempts(site: Site) -> list[tuple[str, str, str, dict[str, Any]]]:
    """What a page elsewhere would try: (label, method, path, httpx arguments)."""
    bearer = {"authorization": f"Bearer {site.key}"}
    chat = text({"model": "greeter", "messages": [{"role": "user", "content": "Ada"}]})
    return [
        ("import, text/plain", "POST", "/api/v1/workflows/import?name=evil", text(yaml.safe_dump(greet()))),
        ("import, form", "POST", "/api/v1/workflows/import?name=evil",
         text(yaml.safe_dump(greet()), "application/x-www-form-urlencoded")),
        ("create workflow, text/plain", "POST", "/api/v1/workflows", text({"name": "evil", "spec": greet()})),
        ("create workflow, JSON", "POST", "/api/v1/workflows", {"json": {"name": "evil", "spec": greet()}}),
        ("create job, text/plain", "POST", "/api/v1/jobs", text(JOB)),
        ("create job, form", "POST", "/api/v1/jobs", text(f"job={json.dumps(JOB)}", "application/x-www-form-urlencoded")),
        ("create job, multipart", "POST", "/api/v1/jobs",
         {"files": {"file": ("people.csv", "name\nAda\n", "text/csv")}, "data": {"job": json.dumps({"workflow": "greet"})}}),
        ("start run, text/plain", "POST", "/api/v1/workflows/greet/runs", text({"inputs": {"name": "Ada"}})),
        ("start run, JSON", "POST", "/api/v1/workflows/greet/runs", {"json": {"inputs": {"name": "Ada"}}}),
        ("delete workflow", "DELETE", "/api/v1/workflows/greet", {}),
        ("Gradio queue/join: create an API key", "POST", "/apps/gradio_api/queue/join",
         {"json": gradio_join(site.client, "/apps", "create_key", ["evil", "all apps", 60])}),
        ("Gradio queue/join: create a job", "POST", "/jobs/gradio_api/queue/join",
         {"json": gradio_join(site.client, "/jobs", "create_job", [None] * 20)}),
        ("editor server function: create a workflow", "POST", "/gradio_api/component_server/",
         {"json": editor_call(site.client, "create_workflow", {"name": "evil-editor", "template": "summarize"})}),
        ("chat completion with an API key", "POST", "/v1/chat/completions", {**chat, "headers": {**chat["headers"], **bearer}}),
        ("app run with an API key", "POST", "/api/v1/apps/greeter/run",
         {"content": json.dumps({"inputs": {"name": "Ada"}}), "headers": {"content-type": "text/plain", **bearer}}),
    ]


def send(client: TestClient, method: str, path: str, arguments: dict[str, Any], **headers: str):
    arguments = {**arguments, "headers": {**arguments.get("headers", {}), **headers}}
    return client.request(method, path, **arguments)


def unchanged(client: TestClient) -> dict[str, Any]:
    time.sleep(0.5)  # a Gradio event that had been queued would have run by now
    return {"workflows": [w["name"] for w in client.get("/api/v1/workflows").json()],
            "runs": client.get("/api/v1/runs").json(), "jobs": client.get("/api/v1/jobs").json(),
            "keys": [k["name"] for k in client.get("/api/v1/keys").json()],
            "publications": [p["slug"] for p in client.get("/api/v1/publications").json()]}


BEFORE = {"workflows": ["greet"], "runs": [], "jobs": [], "keys": ["script"], "publications": ["greeter"]}


def test_cross_site_requests_are_refused_and_change_nothing(site: Site):
    for label, method, path, arguments in attempts(site):
        for foreign in FOREIGN:
            response = send(site.client, method, path, arguments, **foreign)
            assert response.status_code == 403, (label, foreign, response.status_code, response.text[:300])
            error = response.json()["error"]
            assert error["type"] == "CrossSiteRequest" and "STACKYARD_ALLOWED_ORIGINS" in error["message"], (label, error)
    assert unchanged(site.client) == BEFORE


def test_form_typed_bodies_are_refused_on_the_json_api_even_without_an_origin(site: Site):
    for label, method, path, arguments in attempts(site):
        media = arguments.get("headers", {}).get("content-type")
        if media not in ("text/plain", "application/x-www-form-urlencoded"):
            continue
        response = send(site.client, method, path, arguments)
        assert response.status_code == 415, (label, response.status_code, response.text[:300])
        assert "application/json" in response.json()["error"]["message"], label
    untyped = site.client.post("/api/v1/workflows", content=json.dumps({"name": "evil", "spec": greet()}))
    assert untyped.status_code == 415 and "not 'none'" in untyped.json()["error"]["message"]
    assert unchanged(site.client) == BEFORE


@pytest.mark.parametrize("origin", [{"Origin": OWN}, {"Origin": TRUSTED}, {"Sec-Fetch-Site": "same-origin"}, {}],
                         ids=["own-origin", "allowed-origin", "same-origin-fetch", "script"])
def test_own_and_allowed_origins_and_scripts_are_served(site: Site, origin: dict[str, str]):
    client = site.client
    created = send(client, "POST", "/api/v1/workflows", {"json": {"name": "mine", "spec": greet()}}, **origin)
    assert created.status_code == 201, created.text
    imported = send(client, "POST", "/api/v1/workflows/import?name=mine", text(yaml.safe_dump(greet()), "application/yaml"),
                    **origin)
    assert imported.status_code == 201 and imported.json()["number"] == 2, imported.text
    run = send(client, "POST", "/api/v1/workflows/greet/runs", {"json": {"inputs": {"name": "Ada"}}}, **origin)
    assert run.status_code == 202, run.text
    job = send(client, "POST", "/api/v1/jobs", {"json": JOB}, **origin)
    assert job.status_code == 201, job.text
    uploaded = send(client, "POST", "/api/v1/jobs", {"files": {"file": ("people.csv", "name\nAda\nBo\n", "text/csv")},
                                                     "data": {"job": json.dumps({"workflow": "greet"})}}, **origin)
    assert uploaded.status_code == 201 and uploaded.json()["total"] == 2, uploaded.text  # curl -F from a script
    joined = send(client, "POST", "/apps/gradio_api/queue/join",
                  {"json": gradio_join(client, "/apps", "create_key", ["from-the-page", "all apps", 60])}, **origin)
    assert joined.status_code == 200 and "event_id" in joined.json(), joined.text
    editor = send(client, "POST", "/gradio_api/component_server/",
                  {"json": editor_call(client, "create_workflow", {"name": "from-the-editor", "template": "summarize"})},
                  **origin)
    assert editor.status_code == 200 and editor.json()["version"]["number"] == 1, editor.text
    chat = send(client, "POST", "/v1/chat/completions",
                {"json": {"model": "no-such-app", "messages": [{"role": "user", "content": "hi"}]},
                 "headers": {"authorization": f"Bearer {site.key}"}}, **origin)
    assert chat.status_code == 404 and chat.json()["error"]["code"] == "model_not_found"  # reached the app lookup
    deleted = send(client, "DELETE", "/api/v1/workflows/mine", {}, **origin)
    assert deleted.status_code == 204
    deadline = time.monotonic() + 10
    while "from-the-page" not in (keys := [k["name"] for k in client.get("/api/v1/keys").json()]):
        assert time.monotonic() < deadline, keys
        time.sleep(0.1)
    assert sorted(w["name"] for w in client.get("/api/v1/workflows").json()) == ["from-the-editor", "greet"]
    assert len(client.get("/api/v1/runs").json()) == 1 and len(client.get("/api/v1/jobs").json()) == 2


def test_hosts_this_server_does_not_answer_are_refused(site: Site):
    client = site.client
    for path in ("/api/v1/workflows", "/", "/healthz", "/apps/"):
        refused = client.get(path, headers={"Host": "evil.example"})
        assert refused.status_code == 400, (path, refused.text[:300])
        assert "STACKYARD_ALLOWED_HOSTS" in refused.json()["error"]["message"]
    assert client.post("/api/v1/workflows", json={"name": "rebound", "spec": greet()},
                       headers={"Host": "evil.example:80", "Origin": "http://evil.example:80"}).status_code == 400
    for host in ("localhost:8000", "127.0.0.1:5", "[::1]:8000", "LOCALHOST"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
        assert client.get("/api/v1/workflows", headers={"Host": host}).status_code == 200, host
    # Stackyard's own origin is the Host the browser used: a page on localhost:8000 may post to localhost:8000.
    own = client.post("/api/v1/workflows", json={"name": "local", "spec": greet()},
                      headers={"Host": "localhost:8000", "Origin": "http://localhost:8000"})
    assert own.status_code == 201, own.text
    # Kubernetes probes send Host: <pod ip>:<port>, the address the connection came in on.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(f"http://10.1.2.3:8000{path}").status_code in (200, 503), path
        assert client.get(f"http://10.1.2.3:8000{path}", headers={"Host": "10.9.9.9:8000"}).status_code == 400, path
    assert unchanged(client)["workflows"] == ["greet", "local"]


def test_websockets_are_checked_like_requests(monkeypatch: pytest.MonkeyPatch):
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    from api import guard
    from stackyard.settings import Settings

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    guard.install(app, Settings(allowed_hosts=[], allowed_origins=[TRUSTED]))
    client = TestClient(app)
    for headers in ({}, {"Origin": OWN}, {"Origin": TRUSTED}):
        with client.websocket_connect("/ws", headers=headers) as websocket:
            assert websocket.receive_text() == "hello", headers
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Host": "evil.example"},
                    {"Sec-Fetch-Site": "cross-site"}):
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect("/ws", headers=headers):
                pass
        assert refused.value.code == 1008, headers


def test_malformed_allowed_origins_and_hosts_stop_the_start():
    from fastapi import FastAPI

    from api import guard
    from stackyard.settings import Settings

    with pytest.raises(ValueError, match="STACKYARD_ALLOWED_ORIGINS: 'intranet.example'"):
        guard.install(FastAPI(), Settings(allowed_origins=["intranet.example"]))
    with pytest.raises(ValueError, match="STACKYARD_ALLOWED_HOSTS: 'https://stackyard.example.com'"):
        guard.install(FastAPI(), Settings(allowed_hosts=["https://stackyard.example.com"]))
    guard.install(FastAPI(), Settings(allowed_hosts=["*", "Stackyard.example.com:443", "[fd00::2]"],
                                      allowed_origins=["https://intranet.example/", "http://[::1]:8000"]))


def test_the_rules_behind_a_proxy_and_for_reads():
    from starlette.datastructures import Headers

    from api.guard import CrossSiteGuard

    def status(guard: CrossSiteGuard, method: str = "POST", scheme: str = "http", host: str = "stackyard.example.com",
               **headers: str) -> int:
        scope = {"type": "http", "method": method, "path": "/api/v1/workflows", "scheme": scheme,
                 "server": ("10.0.0.5", 8000), "headers": [(b"host", host.encode())]
                 + [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]}
        refusal = guard.refusal(scope, Headers(scope=scope))
        return refusal[0] if refusal else 200

    named = CrossSiteGuard(None, hosts=frozenset({"stackyard.example.com"}), any_host=False, origins=frozenset())
    assert status(named, origin="https://stackyard.example.com") == 200  # TLS ends at the proxy: this process sees http
    assert status(named, scheme="https", origin="http://stackyard.example.com") == 403  # an http page, an https server
    assert status(named, origin="https://stackyard.example.com:8443") == 403
    assert status(named, host="10.0.0.5:8000", origin="http://10.0.0.5:8000") == 200  # the address connected to
    assert status(named, host="10.0.0.6:8000") == 400
    assert status(named, host="stackyard.example.com@evil.example") == 400
    assert status(named, method="GET", origin="http://evil.example", sec_fetch_site="cross-site") == 200  # a link
    anywhere = CrossSiteGuard(None, hosts=frozenset(), any_host=True, origins=frozenset())
    assert status(anywhere, host="evil.example") == 200  # STACKYARD_ALLOWED_HOSTS=* (a proxy checks Host)
    assert status(anywhere, host="evil.example", origin="http://attacker.example") == 403


def test_another_site_cannot_read_answers_through_cors(site: Site):
    evil = site.client.get("/jobs/config", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 200 and not any(h.startswith("access-control-") for h in evil.headers)
    own = site.client.get("/jobs/config", headers={"Origin": OWN})
    assert own.status_code == 200  # Stackyard's own pages read as before


def test_a_link_on_another_site_does_not_log_the_admin_out(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with open_client(monkeypatch, f"sqlite:///{data_dir / 'stackyard.db'}", follow_redirects=False,
                     STACKYARD_ADMIN_PASSWORD=PASSWORD, STACKYARD_ALLOWED_ORIGINS=TRUSTED) as client:
        assert client.post("/login", data={"password": PASSWORD, "next": "/"}).status_code == 303
        assert client.get("/logout", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 303
        assert client.get("/api/v1/workflows").status_code == 200  # still logged in
        assert client.get("/logout", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 303  # the editor's link
        client.cookies.clear()
