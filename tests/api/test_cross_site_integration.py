"""The cross-site guard on a real ``stackyard web`` process with an admin password and the admin's session
cookie. It listens on 127.0.0.2, an address that is not one of the localhost names, as a pod IP is not:

- requests another page could make the admin's browser send (another site, another port of this host)
  get 403 and change nothing, through uvicorn and Gradio's own routes;
- the same requests from Stackyard's own origin or an origin in STACKYARD_ALLOWED_ORIGINS are served;
- a rebound Host is refused, while probes that name the address they connect to (Kubernetes sends
  ``Host: <pod ip>:<port>``) and ``localhost:PORT`` are served.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from stackyard.processes import STACKYARD
from tests.support.specs import greet
from tests.support.stack import Stack, free_port, wait_until

pytestmark = [pytest.mark.integration]

ADDRESS = "127.0.0.2"
PASSWORD = "correct horse battery"
TRUSTED = "https://intranet.example"


@dataclass
class Web:
    client: httpx.Client  # logged in as the admin
    own: str  # the origin of Stackyard's own pages
    key: str  # an API key for the published app 'greeter'


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    root = Path(tmp_path_factory.mktemp("cross-site"))
    stack = Stack(root=root, database_url=f"sqlite:///{root / 'stackyard.db'}",
                  broker_url=f"sqla+sqlite:///{root / 'broker.db'}",
                  extra_env={"STACKYARD_ADMIN_PASSWORD": PASSWORD, "STACKYARD_ALLOWED_ORIGINS": TRUSTED})
    stack.files_root.mkdir(parents=True)
    own = f"http://{ADDRESS}:{stack.port}"
    with open(root / "web.log", "ab") as log:
        process = subprocess.Popen([*STACKYARD, "web", "--host", ADDRESS, "--port", str(stack.port)], env=stack.env(),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stack.processes.append(process)
    try:
        wait_until(lambda: _up(own, process, root), timeout=90, message=f"web server on {own} (see {root / 'web.log'})")
        with httpx.Client(base_url=own, timeout=60) as client:
            assert client.post("/login", data={"password": PASSWORD, "next": "/"}).status_code == 303
            assert client.post("/api/v1/workflows", json={"name": "greet", "spec": greet()}).status_code == 201
            assert client.post("/api/v1/publications", json={"workflow": "greet", "slug": "greeter", "message": "name",
                                                             "reply": "greeting", "check": False}).status_code == 201
            yield Web(client, own, client.post("/api/v1/keys", json={"name": "script"}).json()["key"])
    finally:
        stack.stop()


def _up(base: str, process: subprocess.Popen, root: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"web server exited: {(root / 'web.log').read_text()[-3000:]}")
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def create_key_join(client: httpx.Client, name: str) -> dict:
    dependency = next(d for d in client.get("/apps/config").json()["dependencies"] if d["api_name"] == "create_key")
    return {"data": [name, "all apps", 60], "fn_index": dependency["id"], "trigger_id": dependency["targets"][0][0],
            "session_hash": "cross-site-integration", "event_data": None}


def state(client: httpx.Client) -> dict:
    return {"workflows": sorted(w["name"] for w in client.get("/api/v1/workflows").json()),
            "runs": len(client.get("/api/v1/runs").json()), "jobs": len(client.get("/api/v1/jobs").json()),
            "keys": sorted(k["name"] for k in client.get("/api/v1/keys").json())}


def test_requests_from_other_sites_and_ports_change_nothing(web: Web):
    client = web.client
    before = state(client)
    plain = {"content-type": "text/plain"}
    bearer = {"authorization": f"Bearer {web.key}"}
    attempts = [
        ("POST", "/api/v1/workflows/import?name=evil", {"content": yaml.safe_dump(greet()), "headers": plain}),
        ("POST", "/api/v1/workflows", {"content": json.dumps({"name": "evil", "spec": greet()}), "headers": plain}),
        ("POST", "/api/v1/jobs", {"content": "job=" + json.dumps({"workflow": "greet"}),
                                  "headers": {"content-type": "application/x-www-form-urlencoded"}}),
        ("POST", "/api/v1/jobs", {"files": {"file": ("people.csv", "name\nAda\n", "text/csv")},
                                  "data": {"job": json.dumps({"workflow": "greet"})}}),
        ("POST", "/api/v1/workflows/greet/runs", {"content": json.dumps({"inputs": {"name": "Ada"}}), "headers": plain}),
        ("DELETE", "/api/v1/workflows/greet", {}),
        ("POST", "/apps/gradio_api/queue/join", {"json": create_key_join(client, "evil")}),
        ("POST", "/v1/chat/completions", {"json": {"model": "greeter", "messages": [{"role": "user", "content": "Ada"}]},
                                          "headers": bearer}),
    ]
    for origin in ("http://evil.example", f"http://127.0.0.1:{free_port()}", f"http://{ADDRESS}:{free_port()}"):
        for method, path, arguments in attempts:
            headers = {**arguments.get("headers", {}), "Origin": origin}
            response = client.request(method, path, **{**arguments, "headers": headers})
            assert response.status_code == 403, (origin, method, path, response.status_code, response.text[:300])
            assert "STACKYARD_ALLOWED_ORIGINS" in response.json()["error"]["message"]
    time.sleep(0.5)  # a queued Gradio event would have run by now
    assert state(client) == before


def test_own_and_allowed_origins_are_served(web: Web):
    client = web.client
    own = {"Origin": web.own}
    assert client.post("/api/v1/workflows", json={"name": "mine", "spec": greet()}, headers=own).status_code == 201
    run = client.post("/api/v1/workflows/mine/runs", json={"inputs": {"name": "Ada"}}, headers=own)
    assert run.status_code == 202, run.text
    joined = client.post("/apps/gradio_api/queue/join", json=create_key_join(client, "from-the-page"), headers=own)
    assert joined.status_code == 200, joined.text
    wait_until(lambda: "from-the-page" in state(client)["keys"], timeout=20, message="the key created through Gradio")
    trusted = {"Origin": TRUSTED}
    imported = client.post("/api/v1/workflows/import?name=theirs", content=yaml.safe_dump(greet()),
                           headers={**trusted, "content-type": "application/yaml"})
    assert imported.status_code == 201, imported.text
    assert client.delete("/api/v1/workflows/theirs", headers=trusted).status_code == 204
    by_name = client.post("/api/v1/workflows", json={"name": "by-name", "spec": greet()},
                          headers={"Host": f"localhost:{web.own.rsplit(':', 1)[1]}",
                                   "Origin": f"http://localhost:{web.own.rsplit(':', 1)[1]}"})
    assert by_name.status_code == 201, by_name.text  # the page was opened as http://localhost:PORT


def test_rebound_hosts_are_refused_and_probes_still_answer(web: Web):
    port = web.own.rsplit(":", 1)[1]
    for path in ("/api/v1/workflows", "/", "/healthz"):
        refused = web.client.get(path, headers={"Host": "evil.example"})
        assert refused.status_code == 400 and "STACKYARD_ALLOWED_HOSTS" in refused.json()["error"]["message"], path
        other_address = web.client.get(path, headers={"Host": f"10.0.0.9:{port}"})
        assert other_address.status_code == 400, path
    assert web.client.get("/api/v1/workflows", headers={"Host": f"localhost:{port}"}).status_code == 200
    for path in ("/healthz", "/readyz", "/metrics"):  # as a Kubernetes probe or a Prometheus scrape of the pod IP
        assert httpx.get(f"{web.own}{path}", timeout=30).status_code == 200, path
