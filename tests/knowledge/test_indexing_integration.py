"""A knowledge base end to end on real processes (web, a worker, milvus-lite; Redis + PostgreSQL, then the embedded
broker + SQLite) with real MiniLM embeddings: a mixed folder and pasted text are indexed on the worker, the chunks
are browsable, a query finds the chunk that holds its answer, a RAG workflow naming the base retrieves exactly what
the retrieval test does, an edited chunk is found by its new text, a disabled one is not, the same content is not
added twice, and a base a published app reads cannot be deleted."""

from __future__ import annotations

import time

import pytest
import yaml

from tests.support.openai_server import ChatServer
from tests.support.specs import knowledge_rag
from tests.support.stack import Stack, wait_until
from workflows.templates import template_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASES = "/api/v1/knowledge-bases"
FILES = {
    "policy.txt": "Every employee gets thirty days of paid vacation per year. Unused days expire in March.",
    "parking.md": "# Parking\n\nBicycles are parked in the basement cellar next to the boiler room.",
    "canteen.html": "<html><body><article><p>The canteen serves lunch from noon until two o'clock on every "
                    "weekday, and soup on Fridays.</p></article></body></html>",
    "rooms.csv": "room,floor\nlibrary,3\nboard room,5\n",
}


def documents(stack: Stack) -> list[dict]:
    return stack.api("GET", f"{BASES}/handbook/documents").json()


def ask(stack: Stack, query: str, top_k: int = 3) -> list[dict]:
    response = stack.api("POST", f"{BASES}/handbook/query", json={"query": query, "top_k": top_k})
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def test_a_knowledge_base_indexes_on_a_worker_and_answers_like_the_app(stack: Stack):
    folder = stack.files_root / "handbook"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        (folder / name).write_text(text)
    created = stack.api("POST", BASES, json={"name": "handbook", "chunking": {"length": 12, "overlap": 2}})
    assert created.status_code == 201, created.text
    worker = stack.start_worker(name="worker-knowledge")
    try:
        stack.create("handbook-rag", knowledge_rag("handbook", top_k=3))
        early = stack.start_run("handbook-rag", {"question": "Where can I park my bicycle?"}, wait=120)
        notices = {n["node"]: n["notice"] for n in stack.run(early["id"])["node_runs"]}
        assert "knowledge base 'handbook' has no documents yet" in notices["retriever"]   # said in the trace
        added = stack.api("POST", f"{BASES}/handbook/documents", json={
            "paths": ["handbook"], "texts": [{"name": "wifi", "text": "The guest wifi password is printed on the "
                                                                       "badge of every visitor."}]})
        assert added.status_code == 201, added.text
        assert len(added.json()["added"]) == 5
        wait_until(lambda: all(d["state"] in ("done", "error") for d in documents(stack)), timeout=180,
                   interval=0.5, message="every document indexed")
        assert [(d["name"], d["state"], d["error"]) for d in documents(stack) if d["state"] != "done"] == []
        base = stack.api("GET", f"{BASES}/handbook").json()
        assert base["status"] == "ready" and base["counts"]["done"] == 5
        assert base["counts"]["chunks"] == sum(d["chunk_count"] for d in documents(stack)) > 5

        page = stack.api("GET", f"{BASES}/handbook/chunks", params={"q": "cellar"}).json()
        assert page["total"] == 1
        cellar = page["chunks"][0]
        hits = ask(stack, "Where can I park my bicycle?")
        assert hits[0]["chunk_id"] == cellar["id"] and hits[0]["document"] == "handbook/parking.md"
        assert hits[0]["score"] > hits[-1]["score"]

        # The app's retriever, named by the base, returns what the retrieval test returns.
        run = stack.start_run("handbook-rag", {"question": "Where can I park my bicycle?"}, wait=120)
        assert run["state"] == "succeeded", run["error"]
        assert [d["id"] for d in run["outputs"]["documents"]] == [h["chunk_id"] for h in hits]
        assert cellar["text"] in run["outputs"]["prompt"]
        with ChatServer(reply="In the basement cellar, next to the boiler room.") as llm:   # the whole RAG
            stack.create("handbook-answer", knowledge_rag("handbook", top_k=3, llm_url=llm.base_url))
            answered = stack.start_run("handbook-answer", {"question": "Where can I park my bicycle?"}, wait=120)
        assert answered["state"] == "succeeded", answered["error"]
        assert answered["outputs"]["answer"][0]["text"].startswith("In the basement cellar")
        [sent] = [m["content"] for r in llm.requests for m in r["messages"] if m["role"] == "user"]
        assert cellar["text"] in str(sent)            # the known chunk is in the prompt the LLM was given
        hybrid = stack.api("POST", f"{BASES}/handbook/query", json={"query": "bicycle cellar", "mode": "hybrid"}).json()
        assert hybrid["hits"][0]["chunk_id"] == cellar["id"] and hybrid["hits"][0]["keyword"] > 0
        stack.create("handbook-hybrid", knowledge_rag("handbook", top_k=5, mode="hybrid"))
        mixed = stack.start_run("handbook-hybrid", {"question": "bicycle cellar"}, wait=120)
        assert [d["id"] for d in mixed["outputs"]["documents"]] == [h["chunk_id"] for h in hybrid["hits"]]
        exported = yaml.safe_load(stack.api("GET", "/api/v1/workflows/handbook-rag/export").text)
        store = exported["components"]["retriever"]["init_parameters"]["document_store"]
        assert store["type"] == "milvus_haystack.document_store.MilvusDocumentStore"   # plain Haystack
        assert store["init_parameters"]["collection_name"] == f"kb_{base['id']}_g1"

        edited = stack.api("PATCH", f"{BASES}/handbook/chunks/{cellar['id']}",
                           json={"text": "Bicycles now go in the new underground garage."})
        assert edited.status_code == 200 and edited.json()["edited"] is True
        found = ask(stack, "underground garage for bicycles")
        assert found[0]["chunk_id"] == cellar["id"] and "underground garage" in found[0]["text"]
        stack.api("PATCH", f"{BASES}/handbook/chunks/{cellar['id']}", json={"enabled": False})
        assert cellar["id"] not in [h["chunk_id"] for h in ask(stack, "underground garage for bicycles", top_k=10)]

        again = stack.api("POST", f"{BASES}/handbook/documents", json={"paths": ["handbook"]}).json()
        assert again["added"] == [] and len(again["skipped"]) == 4

        # The ingest template writes through the base: a run on the worker queues what it adds, the worker indexes
        (stack.files_root / "badges").mkdir()
        (stack.files_root / "badges" / "badges.txt").write_text("Lost badges are replaced at the front desk.")
        ingest = yaml.safe_load(template_path("ingest_knowledge").read_text())
        stack.create("handbook-ingest", ingest)
        ingested = stack.start_run("handbook-ingest", {"files": ["badges"]}, wait=120)
        assert ingested["state"] == "succeeded", ingested["error"]
        [badge] = ingested["outputs"]["added"]
        wait_until(lambda: {d["id"]: d["state"] for d in documents(stack)}.get(badge) == "done", timeout=120,
                   interval=0.5, message="the document the workflow added indexed")
        assert ask(stack, "Where are lost badges replaced?")[0]["document_id"] == badge

        published = stack.api("POST", "/api/v1/publications", json={
            "workflow": "handbook-rag", "slug": "handbook", "message": "question", "reply": "prompt", "check": False})
        assert published.status_code == 201, published.text
        refused = stack.api("DELETE", f"{BASES}/handbook")
        assert refused.status_code == 409 and "published app(s) handbook" in refused.text
        assert stack.api("DELETE", "/api/v1/publications/handbook").status_code == 204
        assert stack.api("DELETE", f"{BASES}/handbook").status_code == 204
        assert stack.api("GET", f"{BASES}/handbook").status_code == 404
    finally:
        stack.discard(worker)


def test_a_reindex_answers_from_the_old_generation_throughout_even_when_its_worker_is_killed(stack: Stack):
    import signal
    import threading

    from nodes.stores import milvus_document_store
    from stackyard.settings import Settings

    words = " ".join(f"{('river', 'stone', 'lantern', 'copper')[n % 4]}{n}" for n in range(3000))
    created = stack.api("POST", BASES, json={"name": "big", "chunking": {"length": 20, "overlap": 0}})
    assert created.status_code == 201, created.text
    app = stack.start_worker(queues="cpu", name="worker-app")        # runs the app; kept warm throughout
    first = stack.start_worker(queues="gpu", name="worker-index-first")
    added = stack.api("POST", f"{BASES}/big/documents", json={"texts": [
        {"name": "long", "text": words}, {"name": "vault", "text": "The secret vault code is 4242."}]}).json()
    document = added["added"][0]["id"]

    def state() -> dict:
        return next(d for d in stack.api("GET", f"{BASES}/big/documents").json() if d["id"] == document)

    def base() -> dict:
        return stack.api("GET", f"{BASES}/big").json()

    wait_until(lambda: base()["status"] == "ready", timeout=180, interval=0.5, message="the first generation")
    stack.create("big-rag", knowledge_rag("big", top_k=2))
    before = stack.start_run("big-rag", {"question": "What is the secret vault code?"}, wait=120)
    assert before["state"] == "succeeded" and "4242" in before["outputs"]["prompt"]

    answers: list[tuple[int, bool]] = []
    stop = threading.Event()

    def ask_all_along() -> None:
        while not stop.is_set():
            response = stack.api("POST", f"{BASES}/big/query", json={"query": "What is the secret vault code?",
                                                                     "top_k": 1})
            answers.append((response.status_code, response.status_code == 200
                            and "4242" in response.json()["hits"][0]["text"]))
            time.sleep(0.05)

    asker = threading.Thread(target=ask_all_along, daemon=True)
    asker.start()
    reindex = stack.api("POST", f"{BASES}/big/reindex", json={"chunking": {"length": 30, "overlap": 0}})
    assert reindex.status_code == 202 and reindex.json()["status"] == "reindexing", reindex.text
    wait_until(lambda: (s := state())["state"] == "embedding" and s["progress"] > 0.2, timeout=180, interval=0.05,
               message="the long document half embedded into generation 2")
    assert base()["generation"] == 1
    stack.kill(first, signal.SIGKILL)
    rescue = stack.start_worker(queues="gpu", name="worker-index-rescue")
    try:
        switched = wait_until(lambda: (b := base())["generation"] == 2 and b, timeout=180, interval=0.5,
                              message="the switch to generation 2")
        stop.set()
        asker.join(timeout=30)
        done = state()
        assert (switched["status"], switched["chunking"]["length"], done["attempts"]) == ("ready", 30, 3)
        assert len(answers) > 10 and set(answers) == {(200, True)}     # answered right before, during, after
        settings = Settings(data_dir=stack.data_dir, milvus_lite_port=stack.milvus_port)
        ids = [d.id for d in milvus_document_store(f"kb_{created.json()['id']}_g2", settings).filter_documents()]
        assert len(ids) == len(set(ids)) == switched["counts"]["chunks"] == 100 + 1
        assert done["chunk_count"] == 100

        # the app's warm pipeline moved to the new generation with the base: it returns what the test returns
        hits = stack.api("POST", f"{BASES}/big/query", json={"query": "lantern2 copper3", "top_k": 2}).json()["hits"]
        after = stack.start_run("big-rag", {"question": "lantern2 copper3"}, wait=120)
        assert [d["id"] for d in after["outputs"]["documents"]] == [h["chunk_id"] for h in hits]
        assert hits and all(len(h["text"].split()) == 30 for h in hits if "vault" not in h["text"])   # generation 2
    finally:
        stop.set()
        stack.discard(rescue)
        stack.discard(app)
