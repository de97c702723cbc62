"""``/api/v1/knowledge-bases`` over HTTP without a worker: creating bases, adding documents (each content once),
previewing chunks, and bad input answered with a 4xx naming the field, with nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

BASES = "/api/v1/knowledge-bases"


@pytest.fixture
def client(database):
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        created = test_client.post(BASES, json={"name": "handbook", "chunking": {"length": 50, "overlap": 5}})
        assert created.status_code == 201, created.text
        yield test_client


def test_a_base_starts_empty_with_the_bundled_model_and_its_defaults(client):
    base = client.get(f"{BASES}/handbook").json()
    assert base["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2" and base["status"] == "empty"
    assert base["chunking"] == {"unit": "word", "length": 50, "overlap": 5, "separators": ["\n\n", "\n", ". ", " "],
                                "parent_length": None}
    assert base["retrieval"] == {"mode": "dense", "top_k": 5, "score_threshold": None, "ranker": None,
                                 "candidates": 20, "merge_threshold": 0.5}
    assert [b["name"] for b in client.get(BASES).json()] == ["handbook"]


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"name": "handbook"}, 409, None),
    ({"name": "no spaces"}, 422, "name"),
    ({"name": "x", "embedding_model": "someone/huge-model"}, 422, "embedding_model"),
    ({"name": "x", "chunking": {"length": 0}}, 422, "chunking.length"),
    ({"name": "x", "chunking": {"length": 1000}}, 422, "chunking.length"),
    ({"name": "x", "chunking": {"length": 10, "overlap": 10}}, 422, "chunking.overlap"),
    ({"name": "x", "chunking": {"length": 10, "overlap": 1, "parent_length": 10}}, 422, "chunking.parent_length"),
    ({"name": "x", "chunking": {"unit": "char", "length": 100, "parent_length": 900}}, 422, "chunking.unit"),
    ({"name": "x", "retrieval": {"merge_threshold": 1.0}}, 422, "merge_threshold"),
    ({"name": "x", "retrieval": {"top_k": 0}}, 422, None),
    ({"name": "x", "retrieval": {"mode": "fuzzy"}}, 422, "mode"),
    ({"name": "x", "retrieval": {"mode": "dense", "score_threshold": 1.5}}, 422, "retrieval.score_threshold"),
    ({"name": "x", "retrieval": {"mode": "keyword", "score_threshold": -0.5}}, 422, "retrieval.score_threshold"),
])
def test_bad_bases_are_refused_naming_the_field(client, body, status, field):
    response = client.post(BASES, json=body)
    assert response.status_code == status, response.text
    if field:
        assert field in response.text
    assert [b["name"] for b in client.get(BASES).json()] == ["handbook"]


def test_documents_are_queued_once_per_content(client, data_dir: Path):
    (data_dir / "files" / "policy.txt").write_text("Thirty days of vacation.")
    first = client.post(f"{BASES}/handbook/documents", json={
        "texts": [{"name": "parking", "text": "Bikes go in the cellar."},
                  {"name": "parking again", "text": "Bikes go in the cellar."}],
        "paths": ["policy.txt"]})
    assert first.status_code == 201, first.text
    added = first.json()
    assert [(d["name"], d["state"], d["source"]) for d in added["added"]] == [
        ("parking", "queued", "text"), ("policy.txt", "queued", "file")]
    assert [s["name"] for s in added["skipped"]] == ["parking again"]
    again = client.post(f"{BASES}/handbook/documents", json={"texts": [{"name": "p", "text": "Thirty days of vacation."}]})
    assert again.json()["added"] == [] and again.json()["skipped"][0]["document_id"] == added["added"][1]["id"]
    assert len(client.get(f"{BASES}/handbook/documents").json()) == 2
    base = client.get(f"{BASES}/handbook").json()
    assert base["status"] == "indexing" and base["counts"]["queued"] == 2


@pytest.mark.parametrize(("body", "field"), [
    ({"paths": ["../escape.txt"]}, "paths"),
    ({"paths": ["empty.txt"]}, "paths"),
    ({"paths": ["image.png"]}, "paths"),
    ({"texts": [{"name": "blank", "text": "  "}]}, "texts[0].text"),
    ({}, "texts"),
])
def test_a_bad_source_refuses_the_request_and_adds_nothing(client, data_dir: Path, body, field):
    (data_dir / "escape.txt").write_text("outside the root")
    (data_dir / "files" / "empty.txt").write_bytes(b"")
    (data_dir / "files" / "image.png").write_bytes(b"\x89PNG")
    response = client.post(f"{BASES}/handbook/documents",
                           json={"texts": [{"name": "good", "text": "fine"}], **body} if body else {})
    assert response.status_code == 422, response.text
    assert field in response.text
    assert client.get(f"{BASES}/handbook/documents").json() == []


def test_a_preview_splits_without_storing(client):
    text = " ".join(f"w{i}" for i in range(120))
    shown = client.post(f"{BASES}/handbook/preview", json={"text": text}).json()
    assert shown["total"] == 3 and shown["chunks"][0]["text"].split()[:2] == ["w0", "w1"]
    other = client.post(f"{BASES}/handbook/preview", json={"text": text, "chunking": {"length": 200, "overlap": 0}})
    assert other.json()["total"] == 1
    bad = client.post(f"{BASES}/handbook/preview", json={"text": text, "chunking": {"length": 400}})
    assert bad.status_code == 422 and "chunking.length" in bad.text
    assert client.get(f"{BASES}/handbook").json()["counts"]["chunks"] == 0


def test_unknown_bases_documents_and_chunks_are_404s(client):
    assert client.get(f"{BASES}/nope").status_code == 404
    assert client.post(f"{BASES}/nope/documents", json={"texts": [{"name": "a", "text": "b"}]}).status_code == 404
    assert client.post(f"{BASES}/handbook/documents/nope/retry").status_code == 404
    assert client.patch(f"{BASES}/handbook/chunks/nope", json={"enabled": False}).status_code == 404


def test_a_query_on_an_empty_base_says_so_instead_of_finding_nothing(client):
    answer = client.post(f"{BASES}/handbook/query", json={"query": "vacation"}).json()
    assert answer["hits"] == [] and "no indexed chunks yet" in answer["notice"]
    assert client.post(f"{BASES}/handbook/query", json={"query": ""}).status_code == 422


def test_queries_are_recorded_and_a_query_that_found_nothing_cannot_be_a_test_case(client):
    answer = client.post(f"{BASES}/handbook/query", json={"query": "vacation", "mode": "hybrid"}).json()
    assert (answer["mode"], answer["generation"]) == ("hybrid", 1) and "rank fusion" in answer["scale"]
    [recorded] = client.get(f"{BASES}/handbook/queries").json()
    assert (recorded["id"], recorded["query"], recorded["mode"], recorded["expected"]) == (
        answer["query_id"], "vacation", "hybrid", None)
    refused = client.post(f"{BASES}/handbook/queries/{recorded['id']}/test-case", json={})
    assert refused.status_code == 422 and "chunk_ids" in refused.text
    rerun = client.post(f"{BASES}/handbook/queries/{recorded['id']}/rerun").json()
    assert (rerun["same"], rerun["gained"], rerun["lost"]) == (True, [], [])
    assert len(client.get(f"{BASES}/handbook/queries").json()) == 2
    assert client.post(f"{BASES}/handbook/queries/nope/rerun").status_code == 404
    off_scale = client.post(f"{BASES}/handbook/query", json={"query": "vacation", "score_threshold": 2.0})
    assert off_scale.status_code == 422 and "score_threshold" in off_scale.text


def test_a_reindex_of_an_empty_base_switches_at_once_and_one_at_a_time_otherwise(client):
    switched = client.post(f"{BASES}/handbook/reindex", json={"chunking": {"length": 80, "overlap": 8}})
    assert switched.status_code == 202, switched.text
    assert (switched.json()["generation"], switched.json()["chunking"]["length"]) == (2, 80)
    client.post(f"{BASES}/handbook/documents", json={"texts": [{"name": "a", "text": "Bikes go in the cellar."}]})
    building = client.post(f"{BASES}/handbook/reindex", json={"chunking": {"length": 60, "overlap": 0}}).json()
    assert (building["status"], building["generation"], building["reindex"]["generation"]) == ("reindexing", 2, 3)
    assert building["reindex"]["documents"] == 1 and building["reindex"]["done"] == 0
    again = client.post(f"{BASES}/handbook/reindex", json={})
    assert again.status_code == 409 and "already re-indexing" in again.text
    beyond = client.post(f"{BASES}/handbook/reindex", json={"chunking": {"length": 9999}})
    assert beyond.status_code in (409, 422)
    notice = client.post(f"{BASES}/handbook/query", json={"query": "bikes"}).json()["notice"]
    assert "re-indexing into generation 3" in notice


def test_deleting_the_last_document_a_reindex_waits_for_switches_the_base(client):
    added = client.post(f"{BASES}/handbook/documents", json={"texts": [{"name": "a", "text": "Bikes."}]}).json()
    document = added["added"][0]["id"]
    assert client.post(f"{BASES}/handbook/reindex", json={}).json()["status"] == "reindexing"
    assert client.delete(f"{BASES}/handbook/documents/{document}").status_code == 204
    base = client.get(f"{BASES}/handbook").json()
    assert (base["status"], base["generation"], base["counts"]["queued"]) == ("empty", 2, 0)
    assert client.delete(f"{BASES}/handbook/documents/{document}").status_code == 404


@pytest.mark.parametrize(("url", "named"), [
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://127.0.0.1:9/page.html", "loopback"),
    ("file:///etc/passwd", "http"),
])
def test_a_url_the_fetch_guard_refuses_is_a_422_naming_it_and_adds_nothing(client, url, named):
    refused = client.post(f"{BASES}/handbook/documents", json={"texts": [{"name": "a", "text": "fine"}],
                                                                "urls": [url]})
    assert refused.status_code == 422 and "urls[0]" in refused.text and named in refused.text.lower(), refused.text
    assert client.get(f"{BASES}/handbook/documents").json() == []


def test_a_document_is_changed_only_once_it_is_done_and_with_one_new_content(client, data_dir: Path):
    (data_dir / "files" / "many").mkdir()
    (data_dir / "files" / "many" / "a.txt").write_text("one")
    (data_dir / "files" / "many" / "b.txt").write_text("two")
    added = client.post(f"{BASES}/handbook/documents", json={"texts": [{"name": "a", "text": "Bikes."}]}).json()
    document = added["added"][0]["id"]
    queued = client.patch(f"{BASES}/handbook/documents/{document}", json={"enabled": False})
    assert queued.status_code == 409 and "change it once it is done or failed" in queued.text
    two = client.patch(f"{BASES}/handbook/documents/{document}", json={"text": "x", "url": "http://example.com/"})
    assert two.status_code == 422 and "not text and url" in two.text
    folder = client.patch(f"{BASES}/handbook/documents/{document}", json={"path": "many"})
    assert folder.status_code == 422 and "path names 2 files" in folder.text
    assert client.get(f"{BASES}/handbook/documents").json()[0]["enabled"] is True


def test_chunks_of_a_document_being_indexed_are_not_changed(client):
    added = client.post(f"{BASES}/handbook/documents", json={"texts": [{"name": "a", "text": "Bikes."}]}).json()
    document = added["added"][0]["id"]
    refused = client.post(f"{BASES}/handbook/documents/{document}/chunks", json={"text": "A hand-written chunk."})
    assert refused.status_code == 409 and "its chunks are being rewritten" in refused.text
    assert client.get(f"{BASES}/handbook/chunks").json()["total"] == 0
