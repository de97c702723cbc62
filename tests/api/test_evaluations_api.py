"""``/api/v1/test-sets`` and ``/api/v1/evaluations`` over HTTP without a worker: test sets made, imported and
revised; bad input answered with a 4xx naming the field and the fix, with nothing stored; 100,000 cases
imported in one request and read back page by page."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

SETS, EVALS = "/api/v1/test-sets", "/api/v1/evaluations"
JSONL, CSV = {"Content-Type": "application/x-ndjson"}, {"Content-Type": "text/csv"}


@pytest.fixture
def client(database):
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def test_a_test_set_is_made_revised_and_read_page_by_page(client):
    made = client.post(SETS, json={"name": "faq", "cases": [{"key": "a", "inputs": {"input": "Who?"},
                                                              "expected_answer": "me"}]})
    assert made.status_code == 201 and made.json()["revision"] == 1, made.text
    added = client.post(f"{SETS}/faq/cases", json={"cases": [{"inputs": {"input": "Why?"}}], "note": "one more"})
    assert added.json() | {"created_at": None} == {"number": 2, "case_count": 2, "note": "one more",
                                                   "created_at": None}
    assert client.delete(f"{SETS}/faq/cases/a").json()["case_count"] == 1
    assert [c["key"] for c in client.get(f"{SETS}/faq/cases", params={"revision": 2}).json()["cases"]] == [
        "a", "case-2-2"]
    assert [r["number"] for r in client.get(f"{SETS}/faq").json()["revisions"]] == [3, 2, 1]
    assert client.post(SETS, json={"name": "faq", "cases": [{"inputs": {"input": "x"}}]}).status_code == 409


@pytest.mark.parametrize(("path", "body", "headers", "status", "says"), [
    (SETS, {"name": "bad name!", "cases": [{"inputs": {"input": "x"}}]}, None, 422, "name"),
    (SETS, {"name": "empty", "cases": []}, None, 422, "cases"),
    (SETS, {"name": "deep", "cases": [{"inputs": {"input": {"a": {"b": {"c": 1}}} | {"x": "y" * 200_000}}}]},
     None, 422, "inputs are over 100,000 characters"),
    (f"{SETS}/x/import", "question\nWho?\n", CSV, 422, "no input column"),
    (f"{SETS}/x/import", '{"input": "a"}\n{"input": 3, "id": "a"}\n{"input": "b", "id": "a"}\n', JSONL, 422,
     "Case key 'a' appears twice"),
    (f"{SETS}/x/import", "input\nWho?\n", None, 415, "Content-Type"),
    (EVALS, {"workflow": "nope", "test_set": "x"}, None, 404, "nope"),
    (EVALS, {"workflow": "nope", "test_set": "x", "settings": {"k": 0}}, None, 422, "settings.k"),
])
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(client, path, body, headers, status, says):
    sent = client.post(path, json=body) if isinstance(body, dict) else client.post(
        path, content=body, headers=headers or {}, params={"format": "csv" if headers is CSV else "jsonl"})
    assert sent.status_code == status, sent.text
    assert says in sent.text
    assert client.get(SETS).json() == []


def test_a_hundred_thousand_cases_import_in_one_request_and_read_back_in_pages(client):
    text = "\n".join(json.dumps({"id": f"c{n}", "input": f"question {n}"}) for n in range(100_000))
    imported = client.post(f"{SETS}/big/import", params={"format": "jsonl"}, content=text, headers=JSONL)
    assert imported.status_code == 201 and imported.json()["case_count"] == 100_000, imported.text
    page = client.get(f"{SETS}/big/cases", params={"offset": 99_998, "limit": 500}).json()
    assert (page["total"], [c["key"] for c in page["cases"]]) == (100_000, ["c99998", "c99999"])
    over = client.post(f"{SETS}/big/import", params={"format": "jsonl"}, content='{"input": "one more"}',
                       headers=JSONL)
    assert over.status_code == 422 and "at most 100,000 cases" in over.text
    assert client.get(f"{SETS}/big").json()["revision"] == 1


def test_retrieval_tests_kept_as_test_cases_become_cases_once_per_query(client):
    from knowledge.models import KbQuery
    from store.db import session_scope

    assert client.post("/api/v1/knowledge-bases", json={"name": "handbook"}).status_code == 201
    none_kept = client.post(f"{SETS}/kb/from-knowledge", json={"knowledge_base": "handbook"})
    assert none_kept.status_code == 422 and "Keep as test case" in none_kept.text
    base_id = client.get("/api/v1/knowledge-bases/handbook").json()["id"]
    with session_scope() as session:          # two retrieval tests, one of them kept as a test case
        kept = KbQuery(kb_id=base_id, query="Where do bikes go?", mode="dense", top_k=3, generation=1,
                       expected=[{"document_id": "d1", "document": "parking.md", "snippet": "the cellar"}])
        session.add_all([kept, KbQuery(kb_id=base_id, query="noise", mode="dense", top_k=3, generation=1)])
        session.flush()
        kept_id = kept.id
    first = client.post(f"{SETS}/kb/from-knowledge", json={"knowledge_base": "handbook"})
    assert first.status_code == 201 and first.json()["case_count"] == 1, first.text
    [case] = client.get(f"{SETS}/kb/cases").json()["cases"]
    assert (case["key"], case["inputs"], case["expected_sources"]) == (
        f"kbq-{kept_id[:12]}", {"input": "Where do bikes go?"},
        [{"document_id": "d1", "document": "parking.md", "snippet": "the cellar", "chunk_id": None, "meta": {}}])
    again = client.post(f"{SETS}/kb/from-knowledge", json={"knowledge_base": "handbook", "query_ids": [kept_id]})
    assert again.json() | {"created_at": None} == {"number": 2, "case_count": 1, "created_at": None,
                                                   "note": "from knowledge base handbook"}   # replaced, not doubled
