"""Evaluations on real processes (web, workers, milvus-lite; Redis + PostgreSQL, then the embedded broker + SQLite):
a test set imported over HTTP, two versions evaluated on the workers and scored there (recall 0.9 vs 0.5, the
comparison lists the 4 cases B lost), the publishing gate refuses A → B and allows B → A, ``stackyard eval run
--gate`` exits 1 on a failing gate, 0 on a passing one and 2 when it cannot run, and a worker killed
mid-evaluation leaves exactly one result per case."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from stackyard.processes import STACKYARD
from tests.support.evaluations import DECOYED, TOPICS, keyword_rag
from tests.support.stack import Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASES, SETS, EVALS = "/api/v1/knowledge-bases", "/api/v1/test-sets", "/api/v1/evaluations"
SETTINGS = {"metrics": ["recall", "mrr"], "k": 5}
CSV, JSONL = {"Content-Type": "text/csv"}, {"Content-Type": "application/x-ndjson"}


def evaluate(stack: Stack, version: int, test_set: str = "faq", **body) -> dict:
    started = stack.api("POST", EVALS, json={"workflow": "faq-bot", "version": version, "test_set": test_set,
                                            "settings": SETTINGS, **body})
    assert started.status_code == 202, started.text
    return started.json()


def finished(stack: Stack, evaluation_id: str, timeout: float = 180) -> dict:
    wait_until(lambda: stack.api("GET", f"{EVALS}/{evaluation_id}").json()["state"] in ("done", "failed"),
               timeout=timeout, interval=0.5, message=f"evaluation {evaluation_id} scored")
    return stack.api("GET", f"{EVALS}/{evaluation_id}").json()


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*STACKYARD, "eval", *args], env=stack.env(), capture_output=True, text=True, timeout=300)


def test_two_versions_are_evaluated_compared_and_gated_on_workers(stack: Stack):
    assert stack.api("POST", BASES, json={"name": "facts"}).status_code == 201
    worker = stack.start_worker(name="worker-evaluations", concurrency=2)
    try:
        added = stack.api("POST", f"{BASES}/facts/documents", json={"texts": [
            *({"name": t, "text": f"The {t} fact."} for t in TOPICS),
            {"name": "decoy", "text": " ".join(["decoy"] * 6)}]}).json()
        ids = {d["name"]: d["id"] for d in added["added"]}
        wait_until(lambda: stack.api("GET", f"{BASES}/facts").json()["status"] == "ready", timeout=180,
                   interval=0.5, message="the knowledge base indexed")
        stack.create("faq-bot", keyword_rag(5))                                   # version 1: A
        assert stack.api("POST", "/api/v1/workflows/faq-bot/versions",
                         json={"spec": keyword_rag(1)}).status_code == 201        # version 2: B

        bad = stack.api("POST", f"{SETS}/faq/import", params={"format": "csv"}, content="question\nWho?\n",
                        headers=CSV)
        assert bad.status_code == 422 and "no input column" in bad.json()["error"]["message"]
        assert stack.api("GET", f"{SETS}/faq").status_code == 404                   # nothing half written
        lines = [{"id": f"case-{t}", "input": f"decoy {t}" if t in DECOYED else t,
                  "expected_sources": [{"document_id": ids[t], "snippet": f"The {t} fact."}]} for t in TOPICS]
        lines.append({"id": "case-unfindable", "input": "otter",
                      "expected_sources": [{"document_id": ids["decoy"], "snippet": "decoy"}]})
        imported = stack.api("POST", f"{SETS}/faq/import", params={"format": "jsonl"},
                             content="\n".join(json.dumps(line) for line in lines), headers=JSONL)
        assert imported.status_code == 201 and imported.json()["case_count"] == 10, imported.text

        a = finished(stack, evaluate(stack, 1)["id"])
        b = finished(stack, evaluate(stack, 2)["id"])
        assert (a["state"], a["summary"]["metrics"]["recall"]["mean"]) == ("done", 0.9)
        assert (b["state"], b["summary"]["metrics"]["recall"]["mean"]) == ("done", 0.5)
        assert a["progress"]["succeeded"] == 10 and a["generations"] == {"facts": 1}
        report = stack.api("GET", f"{EVALS}/compare", params={"a": a["id"], "b": b["id"]}).json()
        assert sorted(report["worse"]) == sorted(f"case-{t}" for t in DECOYED)
        again = evaluate(stack, 1)
        assert (again["id"], again["reused"]) == (a["id"], True)

        gate = {"test_set": "faq", "settings": SETTINGS, "thresholds": {"recall": 0.8}, "max_drop": {"mrr": 0.1}}
        body = {"workflow": "faq-bot", "slug": "faq", "message": "question", "reply": "documents", "check": False}
        live = stack.api("POST", "/api/v1/publications", json={**body, "version": 1, "gate": gate})
        assert live.status_code == 201 and live.json()["gate_result"]["passed"], live.text
        refused = stack.api("POST", "/api/v1/publications", json={**body, "version": 2})
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["field"] == "gate" and not error["report"]["passed"]
        assert "recall ≥ 0.8: 0.500" in error["message"]
        assert stack.api("GET", "/api/v1/publications").json()[0]["version"] == 1   # the switch was refused
        forced = stack.api("POST", "/api/v1/publications", json={**body, "version": 2,
                                                                  "override_reason": "demo of an override"})
        assert forced.status_code == 201 and forced.json()["gate_result"]["override"] == "demo of an override"
        back = stack.api("POST", "/api/v1/publications", json={**body, "version": 1})
        assert back.status_code == 201 and back.json()["gate_result"]["passed"]

        failing = cli(stack, "run", "faq-bot@2", "--set", "faq", "--gate", "--threshold", "recall=0.8")
        assert failing.returncode == 1, failing.stderr
        assert "FAIL  recall ≥ 0.8: 0.5" in failing.stderr
        passing = cli(stack, "run", "faq-bot@1", "--set", "faq", "--gate", "--threshold", "recall=0.8")
        assert passing.returncode == 0, passing.stderr
        assert json.loads(passing.stdout)["metrics"]["recall"]["mean"] == 0.9
        missing = cli(stack, "run", "nope@1", "--set", "faq", "--gate", "--threshold", "recall=0.8")
        assert missing.returncode == 2 and "nope" in missing.stderr

        # killed mid-evaluation: the job's crash safety gives one result per case
        many = [{**line, "id": f"{line['id']}-{n}"} for n in range(12) for line in lines]
        assert stack.api("POST", f"{SETS}/many/import", params={"format": "jsonl"},
                         content="\n".join(json.dumps(line) for line in many), headers=JSONL).status_code == 201
        long = evaluate(stack, 1, test_set="many", concurrency=1)
        wait_until(lambda: stack.api("GET", f"{EVALS}/{long['id']}").json()["progress"].get("succeeded", 0) >= 10,
                   timeout=120, interval=0.2, message="the evaluation under way")
        stack.kill(worker, signal.SIGKILL)
        worker = stack.start_worker(name="worker-evaluations-rescue")
        done = finished(stack, long["id"], timeout=240)
        assert done["state"] == "done" and done["summary"]["cases"] == 120 and done["summary"]["failed"] == 0
        results = stack.api("GET", f"{EVALS}/{long['id']}/results", params={"limit": 500}).json()
        assert results["total"] == 120 and len({r["case_key"] for r in results["results"]}) == 120
        assert done["summary"]["metrics"]["recall"]["mean"] == pytest.approx(0.9)
    finally:
        stack.discard(worker)
