"""On real web + worker processes: a loader reads only under the files root, whatever hands it the path.

Runs through the HTTP API and a JSONL batch job feed ``/etc/passwd`` and ``../../etc/passwd`` to a
TextFileToDocument through a prompt (not a declared input, which is refused before the pipeline starts):
the run or item fails pinned to the loader with the fix, the file's content appears nowhere, and a file
under the root still loads. Each scenario runs on both brokers (see conftest).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.stack import Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
TXT = "haystack.components.converters.txt.TextFileToDocument"
ESCAPES = ["/etc/passwd", "../../etc/passwd"]
PASSWD = Path("/etc/passwd").read_text()


def prompt_to_loader() -> dict:
    return {"components": {"prompt": {"type": PROMPT, "init_parameters": {"template": "{{ path }}"}},
                           "loader": {"type": TXT, "init_parameters": {}}},
            "connections": [{"sender": "prompt.prompt", "receiver": "loader.sources"}],
            "inputs": {"path": ["prompt.path"]}, "outputs": {"documents": "loader.documents"}}


def direct_loader() -> dict:
    return {"components": {"loader": {"type": TXT, "init_parameters": {}}},
            "inputs": {"file": ["loader.sources"]}, "outputs": {"documents": "loader.documents"}}


@pytest.fixture(scope="module")
def worker(stack: Stack):
    (stack.files_root / "notes").mkdir(parents=True, exist_ok=True)
    (stack.files_root / "notes" / "ok.txt").write_text("fine to read")
    stack.create("prompt-loader", prompt_to_loader())
    stack.create("direct-loader", direct_loader())
    proc = stack.start_worker(name="worker-files")
    yield proc
    if proc.poll() is None:
        stack.discard(proc)


def test_a_run_refuses_a_path_a_prompt_hands_the_loader(stack: Stack, worker) -> None:
    for path in ESCAPES:
        done = stack.start_run("prompt-loader", {"path": path}, wait=60)
        assert done["state"] == "failed" and done["outputs"] is None
        assert "Component name: 'loader'" in done["error"] and "leads outside the files root" in done["error"]
        assert "STACKYARD_FILES_ROOT" in done["error"]
        loader = next(row for row in stack.run(done["id"])["node_runs"] if row["node"] == "loader")
        assert loader["state"] == "failed" and "leads outside the files root" in loader["error"]
        assert PASSWD not in json.dumps(stack.run(done["id"]))
    ok = stack.start_run("prompt-loader", {"path": "notes/ok.txt"}, wait=60)
    assert ok["state"] == "succeeded", ok["error"]
    assert [doc["content"] for doc in ok["outputs"]["documents"]] == ["fine to read"]


def test_a_declared_input_is_refused_naming_it(stack: Stack, worker) -> None:
    done = stack.start_run("direct-loader", {"file": ["../../etc/passwd"]}, wait=60)
    assert done["state"] == "failed" and "Input 'file' (node 'loader')" in done["error"]
    assert PASSWD not in json.dumps(stack.run(done["id"]))
    ok = stack.start_run("direct-loader", {"file": ["notes/ok.txt"]}, wait=60)
    assert ok["state"] == "succeeded" and ok["outputs"]["documents"][0]["content"] == "fine to read"


def test_batch_job_items_are_confined_each(stack: Stack, worker) -> None:
    lines = "\n".join(json.dumps({"path": path}) for path in [*ESCAPES, "notes/ok.txt"])
    response = stack.api("POST", "/api/v1/jobs", json={"workflow": "prompt-loader", "concurrency": 1,
                                                       "source": {"type": "jsonl", "data": lines}})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    done = wait_until(lambda: (job := stack.api("GET", f"/api/v1/jobs/{job_id}").json())["state"] in
                      ("succeeded", "failed") and job, timeout=120, interval=0.2, message="job to finish")
    assert (done["done"], done["failed"]) == (1, 2), done
    rows = stack.api("GET", f"/api/v1/jobs/{job_id}/items", params={"limit": 10}).json()
    assert [row["state"] for row in rows] == ["failed", "failed", "succeeded"]
    for row in rows[:2]:
        assert "Component name: 'loader'" in row["error"] and "leads outside the files root" in row["error"]
    assert rows[2]["outputs"]["documents"][0]["content"] == "fine to read"
    assert PASSWD not in json.dumps(rows)
