"""The one retrieval path on real milvus-lite and MiniLM, with indexing run in this process: dense, keyword and
hybrid answer from one index, a re-index builds the next generation while the current one answers, hand edits
and hand-added chunks carry over, and replaced generations and deleted documents leave no vectors behind."""

from __future__ import annotations

import pytest
from sqlmodel import select

from knowledge import bases, generations, queries, search
from knowledge.documents import text_source
from knowledge.indexing import index_document
from knowledge.models import DocState, KbChunk
from knowledge.settings import BadKnowledgeSettings, Chunking
from nodes.stores import list_collections
from stackyard.errors import Conflict
from stackyard.settings import get_settings
from store.db import session_scope

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database", ["postgresql"], indirect=True)]

NOISE = " ".join(f"{('river', 'stone', 'lantern', 'copper')[n % 4]}{n}" for n in range(300))
VAULT = "The secret vault code is 4242 and only the caretaker knows it."


def handbook():
    with session_scope() as session:
        return bases.get(session, "handbook")


def add(*texts: tuple[str, str]) -> list[str]:
    with session_scope() as session:
        added = bases.add_documents(session, bases.get(session, "handbook"), [text_source(n, t) for n, t in texts])
        return [d.id for d in added.added]


def vectors(generation: int) -> list[str]:
    return [d.id for d in search.document_store(handbook(), get_settings(), generation).filter_documents()]


def test_one_index_answers_dense_keyword_and_hybrid_and_a_reindex_swaps_generations(database, milvus):
    settings = get_settings()
    with session_scope() as session:
        bases.create(session, settings, name="handbook", chunking=Chunking(length=20, overlap=0))
    vault, noise = add(("vault", VAULT), ("noise", NOISE))
    assert [index_document(vault), index_document(noise)] == [DocState.DONE, DocState.DONE]

    dense = search.retrieve(handbook(), "Who knows the code of the secret vault?", settings, top_k=3)
    assert "4242" in dense[0].text and 0 <= dense[-1].score < dense[0].score <= 1
    keyword = search.retrieve(handbook(), "4242", settings, mode="keyword", top_k=3)
    assert [("4242" in h.text, h.score > 0) for h in keyword] == [(True, True)]   # BM25: only it has the word
    hybrid = search.retrieve(handbook(), "caretaker vault code", settings, mode="hybrid", top_k=3)
    assert "4242" in hybrid[0].text and hybrid[0].dense is not None and hybrid[0].keyword > 0
    assert 0 < hybrid[0].score <= 2 / 61                                           # reciprocal rank fusion
    cosine = {h.chunk_id: h.score for h in search.retrieve(handbook(), "caretaker vault code", settings, top_k=20)}
    assert [h.dense for h in hybrid] == pytest.approx([cosine[h.chunk_id] for h in hybrid], abs=1e-4)
    assert search.retrieve(handbook(), "4242", settings, mode="keyword", score_threshold=1000.0) == []
    with pytest.raises(BadKnowledgeSettings, match="off the dense scale"):
        search.retrieve(handbook(), "vault", settings, score_threshold=3.0)

    with session_scope() as session:                   # a retrieval test, recorded and kept as a test case
        asked = queries.ask(session, bases.get(session, "handbook"), "vault code 4242", settings, mode="keyword")
        case = queries.save_case(session, bases.get(session, "handbook"), asked.query_id, None)
    assert case.expected == [{"document_id": vault, "document": "vault", "snippet": VAULT}]

    with session_scope() as session:                   # a hand edit and a chunk added by hand, before re-indexing
        base = bases.get(session, "handbook")
        vault_chunk = session.exec(select(KbChunk).where(KbChunk.document_id == vault)).one()
        edited, owner = bases.edit_chunk(session, base, vault_chunk.id, text="The secret vault code is now 9999.")
        added, _ = bases.add_chunk(session, base, bases.document(session, base, vault), "Spare keys hang in the attic.")
        session.expunge_all()
    search.reindex_chunk(handbook(), edited, owner, settings)
    search.reindex_chunk(handbook(), added, owner, settings)
    assert search.retrieve(handbook(), "attic spare keys", settings, mode="keyword", top_k=1)[0].chunk_id == added.id

    with session_scope() as session:
        again = generations.start(session, bases.get(session, "handbook"), settings,
                                  chunking=Chunking(length=30, overlap=0))
    assert sorted(again) == sorted([vault, noise])
    assert index_document(noise) == DocState.DONE      # generation 2 has the noise; the vault is still queued
    building = handbook()
    assert (building.generation, building.next_generation) == (1, 2)
    served = search.retrieve(building, "vault code", settings, mode="keyword", top_k=2)
    assert "9999" in served[0].text                    # generation 1 still answers, hand edits included
    assert index_document(vault) == DocState.DONE
    switched = handbook()
    assert (switched.generation, switched.chunking["length"], switched.retired_generation) == (2, 30, 1)

    with session_scope() as session:
        rows = {c.id: c for c in session.exec(select(KbChunk).where(KbChunk.kb_id == switched.id)).all()}
    assert sorted(vectors(2)) == sorted(rows)          # every chunk once, nothing else
    # 300 words / 30, the vault's one chunk as the new cut makes it, then its edit made under the old cut (kept as
    # a chunk of its own: it cannot hold a position of another cut) and the chunk added by hand
    assert len(rows) == 10 + 1 + 1 + 1
    vault_rows = sorted((c for c in rows.values() if c.document_id == vault), key=lambda c: c.position)
    assert [(c.position, c.text) for c in vault_rows] == [
        (0, VAULT), (1, "The secret vault code is now 9999."), (2, "Spare keys hang in the attic.")]
    carried = vault_rows[1].id                         # a new id: the new cut makes the old one for its own chunk 0
    assert carried != edited.id == vault_rows[0].id
    assert carried in [h.chunk_id for h in search.retrieve(switched, "vault code", settings, mode="hybrid", top_k=3)]
    with session_scope() as session:                   # asked again on generation 2: what changed, said
        again_answer, change = queries.rerun(session, bases.get(session, "handbook"), asked.query_id, settings)
    assert (again_answer.generation, change["generation_before"]) == (2, 1)
    assert change["same"] is (change["gained"] == change["lost"] == [])

    names = {f"kb_{switched.id}_g1", f"kb_{switched.id}_g2"}
    assert names <= set(list_collections(settings))
    assert search.drop_generations(switched.id, settings, up_to=1) == [f"kb_{switched.id}_g1"]
    assert f"kb_{switched.id}_g2" in list_collections(settings)

    search.forget_document(switched, vault, settings)
    assert sorted(vectors(2)) == sorted(i for i, c in rows.items() if c.document_id == noise)


def test_a_url_is_fetched_through_the_guard_when_indexed_and_a_huge_one_fails_with_the_reason(
        database, milvus, monkeypatch: pytest.MonkeyPatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from knowledge import documents
    from knowledge.documents import url_source
    from stackyard.settings import reset_settings_cache

    page = b"<html><body><article><p>The lighthouse keeper feeds the gulls at dawn.</p></article></body></html>"

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = page if self.path == "/keeper.html" else b"x" * 5000
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            if self.path != "/endless.html":          # no length declared: the cap counts what is sent
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{port}")
    reset_settings_cache()
    try:
        with session_scope() as session:
            base = bases.create(session, get_settings(), name="handbook")
            added = bases.add_documents(session, base, [url_source(f"http://127.0.0.1:{port}/{name}")
                                                        for name in ("keeper.html", "huge.html", "endless.html")])
            keeper, huge, endless = [d.id for d in added.added]
        assert index_document(keeper) == DocState.DONE
        hits = search.retrieve(handbook(), "Who feeds the gulls?", get_settings(), top_k=1)
        assert hits[0].text == "The lighthouse keeper feeds the gulls at dawn."
        monkeypatch.setattr(documents, "MAX_FILE_BYTES", 1000)
        assert [index_document(huge), index_document(endless)] == [DocState.ERROR, DocState.ERROR]
        with session_scope() as session:
            errors = [bases.document(session, bases.get(session, "handbook"), d).error for d in (huge, endless)]
        assert "is 5,000 bytes; a fetch reads at most 1,000" in errors[0]
        assert "sent more than 1,000 bytes" in errors[1]
        with session_scope() as session:              # the same URL again is skipped
            again = bases.add_documents(session, bases.get(session, "handbook"),
                                        [url_source(f"http://127.0.0.1:{port}/keeper.html")])
        assert again.added == [] and again.skipped[0]["document_id"] == keeper
    finally:
        server.shutdown()


def test_a_document_switched_off_loses_its_vectors_and_a_replaced_one_is_indexed_anew(database, milvus):
    settings = get_settings()
    with session_scope() as session:
        bases.create(session, settings, name="handbook", chunking=Chunking(length=20, overlap=0))
    vault, noise = add(("vault", VAULT), ("noise", "Copper kettles hang above the stove in the kitchen."))
    assert [index_document(vault), index_document(noise)] == [DocState.DONE, DocState.DONE]

    def change(document_id: str, **what) -> None:
        with session_scope() as session:
            base = bases.get(session, "handbook")
            bases.change_document(session, base, bases.document(session, base, document_id), **what)
        assert index_document(document_id) == DocState.DONE

    change(vault, enabled=False)
    assert [h.text for h in search.retrieve(handbook(), "vault code", settings, top_k=5)] == [
        "Copper kettles hang above the stove in the kitchen."]
    with session_scope() as session:                   # still browsable
        assert bases.chunks(session, bases.get(session, "handbook"), document_id=vault)[1] == 1
    with session_scope() as session:                   # a chunk edited while its document is off stays out
        base = bases.get(session, "handbook")
        chunk = session.exec(select(KbChunk).where(KbChunk.document_id == vault)).one()
        edited, owner = bases.edit_chunk(session, base, chunk.id, text="The vault code is 7777 now.")
        session.expunge_all()
    search.reindex_chunk(handbook(), edited, owner, settings)
    assert chunk.id not in [h.chunk_id for h in search.retrieve(handbook(), "vault code 7777", settings,
                                                                mode="keyword", top_k=5)]
    change(vault, enabled=True)
    assert "7777" in search.retrieve(handbook(), "vault code", settings, top_k=1)[0].text
    change(noise, source=text_source("noise", "The kettle now hangs in the pantry."))
    assert "pantry" in search.retrieve(handbook(), "kettle", settings, mode="keyword", top_k=1)[0].text
    assert len(vectors(1)) == 2                        # one chunk each: the old kettle chunk is gone
    with session_scope() as session, pytest.raises(Conflict, match="already holds that content"):
        base = bases.get(session, "handbook")
        bases.change_document(session, base, bases.document(session, base, noise), source=text_source("v", VAULT))


def test_a_collection_made_before_keyword_search_existed_asks_for_a_reindex(database, milvus):
    from haystack import Document

    from nodes.stores import milvus_document_store

    settings = get_settings()
    with session_scope() as session:
        bases.create(session, settings, name="handbook")
    old = milvus_document_store(search.collection_name(handbook()), settings)   # dense only, as before
    old.write_documents([Document(id="c1", content="Thirty days of vacation.", embedding=[0.1] * 384)])
    with pytest.raises(search.NeedsReindex, match="Re-index it once") as refused:
        search.retrieve(handbook(), "vacation", settings, mode="hybrid")
    assert refused.value.status == 409
    assert [h.chunk_id for h in search.retrieve(handbook(), "vacation", settings)] == ["c1"]   # dense still answers


def test_a_bases_ranker_reorders_what_its_retriever_found_as_the_ranker_node_does(
        database, milvus, tmp_path, monkeypatch: pytest.MonkeyPatch):
    import json

    from knowledge.settings import Retrieval
    from stackyard.settings import reset_settings_cache
    from tests.support.models import build_tiny_cross_encoder
    from tests.support.specs import knowledge_rag
    from workflows.execute import run_pipeline
    from workflows.spec import spec_from_dict
    from workflows.validation import build_pipeline

    ranker_dir = build_tiny_cross_encoder(tmp_path / "tiny-ranker")
    monkeypatch.setenv("STACKYARD_MODEL_PATHS", json.dumps({"acme/tiny-ranker": str(ranker_dir)}))
    reset_settings_cache()
    settings = get_settings()
    with session_scope() as session:
        with pytest.raises(BadKnowledgeSettings, match="retrieval.ranker 'acme/not-here' is not on this machine"):
            bases.create(session, settings, name="other", retrieval=Retrieval(ranker="acme/not-here"))
        bases.create(session, settings, name="handbook", chunking=Chunking(length=20, overlap=0),
                     retrieval=Retrieval(ranker="acme/tiny-ranker", candidates=12, top_k=4))
    for document_id in add(("vault", VAULT), ("noise", NOISE)):
        assert index_document(document_id) == DocState.DONE

    ranked = search.retrieve(handbook(), "Who knows the vault code?", settings)
    plain = search.retrieve(handbook(), "Who knows the vault code?", settings, top_k=12, rank=False)
    assert len(ranked) == 4 and all(0 <= h.score <= 1 for h in ranked)
    assert [h.chunk_id for h in ranked] != [h.chunk_id for h in plain[:4]]   # the ranker's order, not cosine's
    assert {h.chunk_id for h in ranked} <= {h.chunk_id for h in plain}

    spec = knowledge_rag("handbook", top_k=12)         # the same as a workflow: retriever → ranker node → prompt
    spec["components"]["rank"] = {"type": "haystack_integrations.components.rankers.sentence_transformers."
                                          "sentence_transformers_similarity.SentenceTransformersSimilarityRanker",
                                  "init_parameters": {"model": "acme/tiny-ranker", "top_k": 4}}
    spec["connections"] = [{"sender": "embed.embedding", "receiver": "retriever.query_embedding"},
                           {"sender": "retriever.documents", "receiver": "rank.documents"},
                           {"sender": "rank.documents", "receiver": "prompt.documents"}]
    spec["inputs"]["question"].append("rank.query")
    spec["outputs"]["documents"] = "rank.documents"
    workflow = spec_from_dict(spec)
    outputs = run_pipeline(workflow, build_pipeline(workflow), {"question": "Who knows the vault code?"})
    assert [d["id"] for d in outputs["documents"]] == [h.chunk_id for h in ranked]


PASSAGES = ("The vault sits below the old mill and its door is made of green steel. The secret vault code is 4242 "
            "and only the caretaker knows it. The caretaker lives in the cottage by the river.",
            " ".join(f"lantern{n}" for n in range(36)),
            " ".join(f"copper{n}" for n in range(36)))


def test_a_parent_child_base_answers_with_the_passage_as_the_auto_merging_node_does(database, milvus):
    from haystack import Pipeline

    from knowledge.settings import Retrieval
    from tests.support.specs import knowledge_rag
    from workflows.execute import run_pipeline
    from workflows.io import export_yaml
    from workflows.spec import spec_from_dict
    from workflows.validation import build_pipeline

    settings = get_settings()
    text = " ".join(PASSAGES)               # 3 parents of 36 words (the splitter counts spaces), 6 chunks each
    with session_scope() as session:
        with pytest.raises(BadKnowledgeSettings, match="must be more than chunking.length"):
            bases.create(session, settings, name="x", chunking=Chunking(length=36, overlap=0, parent_length=36))
        with pytest.raises(BadKnowledgeSettings, match='set chunking.unit to "word"'):
            bases.create(session, settings, name="x", chunking=Chunking(unit="char", length=60, parent_length=360))
        bases.create(session, settings, name="handbook", chunking=Chunking(length=6, overlap=0, parent_length=36),
                     retrieval=Retrieval(merge_threshold=0.0, top_k=3))
        bases.create(session, settings, name="strict", chunking=Chunking(length=6, overlap=0, parent_length=36),
                     retrieval=Retrieval(mode="keyword", top_k=3))
    [doc] = add(("mill", text))
    with session_scope() as session:
        [strict_doc] = [d.id for d in bases.add_documents(session, bases.get(session, "strict"),
                                                           [text_source("mill", text)]).added]
    assert [index_document(doc), index_document(strict_doc)] == [DocState.DONE, DocState.DONE]
    with session_scope() as session:
        rows = session.exec(select(KbChunk).where(KbChunk.document_id == doc).order_by(KbChunk.position)).all()
        session.expunge_all()
    assert len(rows) == 6 + 6 + 6 and len({r.meta["__parent_id"] for r in rows}) == 3

    hits = search.retrieve(handbook(), "Who knows the secret vault code?", settings)
    assert hits[0].text.strip() == PASSAGES[0]                  # the whole passage, not the 6 words that matched
    assert hits[0].chunks and all(c in {r.id for r in rows[:6]} for c in hits[0].chunks)
    assert hits[0].meta["kb_document_id"] == doc

    with session_scope() as session:                            # more than half of a parent's chunks must match
        strict = bases.get(session, "strict")
    [only] = search.retrieve(strict, "4242", settings)
    assert only.chunks == () and "4242" in only.text and len(only.text.split()) <= 6

    spec = knowledge_rag("handbook", top_k=3)                   # a workflow: retriever → auto-merging → prompt
    spec["components"]["merge"] = {"type": "haystack.components.retrievers.auto_merging_retriever."
                                           "AutoMergingRetriever", "init_parameters": {
        "document_store": {"type": "knowledge_base", "init_parameters": {"name": "handbook"}}, "threshold": 0.000001}}
    spec["connections"] = [{"sender": "embed.embedding", "receiver": "retriever.query_embedding"},
                           {"sender": "retriever.documents", "receiver": "merge.documents"},
                           {"sender": "merge.documents", "receiver": "prompt.documents"}]
    spec["outputs"]["documents"] = "merge.documents"
    workflow = spec_from_dict(spec)
    outputs = run_pipeline(workflow, build_pipeline(workflow), {"question": "Who knows the secret vault code?"})
    assert [d["id"] for d in outputs["documents"]] == [h.chunk_id for h in hits]
    exported = Pipeline.loads(export_yaml(workflow))            # plain Haystack: the parents' collection
    assert exported.get_component("merge").document_store.collection_name.endswith("_parents")

    with session_scope() as session:                            # an edited chunk answers with its own text
        base = bases.get(session, "handbook")
        edited, owner = bases.edit_chunk(session, base, rows[1].id, text="The vault code changed to 9999.")
        session.expunge_all()
    search.reindex_chunk(handbook(), edited, owner, settings)
    found = search.retrieve(handbook(), "9999", settings, mode="keyword", top_k=1)
    assert [(h.chunk_id, h.text, h.chunks) for h in found] == [(edited.id, "The vault code changed to 9999.", ())]
    assert index_document_again(doc) == DocState.DONE           # a re-split keeps the edit as its own parent
    assert search.retrieve(handbook(), "9999", settings, mode="keyword", top_k=1)[0].text == \
        "The vault code changed to 9999."

    search.forget_document(handbook(), doc, settings)
    assert search.document_store(handbook(), settings, part=search.PARENTS).filter_documents() == []


def index_document_again(document_id: str) -> DocState | None:
    with session_scope() as session:
        base = bases.get(session, "handbook")
        bases.change_document(session, base, bases.document(session, base, document_id), enabled=True)
    return index_document(document_id)


def test_a_parent_reads_as_its_chunks_that_are_on_and_unedited(database, milvus):
    from knowledge.settings import Retrieval

    settings = get_settings()
    with session_scope() as session:
        bases.create(session, settings, name="handbook", chunking=Chunking(length=6, overlap=0, parent_length=36),
                     retrieval=Retrieval(merge_threshold=0.0, top_k=3))
    [doc] = add(("mill", " ".join(PASSAGES)))
    assert index_document(doc) == DocState.DONE
    with session_scope() as session:
        rows = session.exec(select(KbChunk).where(KbChunk.document_id == doc).order_by(KbChunk.position)).all()
        base = bases.get(session, "handbook")
        secret = next(r for r in rows if "4242" in r.text)
        off, owner = bases.edit_chunk(session, base, secret.id, enabled=False)
        session.expunge_all()
    search.reindex_chunk(handbook(), off, owner, settings)
    [passage] = [h for h in search.retrieve(handbook(), "Who lives in the cottage by the river?", settings)
                 if h.chunks][:1]
    assert "cottage" in passage.text and "4242" not in passage.text     # the switched-off words are not served
    with session_scope() as session:
        on, owner = bases.edit_chunk(session, bases.get(session, "handbook"), secret.id, enabled=True)
        session.expunge_all()
    search.reindex_chunk(handbook(), on, owner, settings)
    found = search.retrieve(handbook(), "secret vault code 4242", settings, mode="keyword", top_k=1)
    assert found and "4242" in found[0].text and secret.id in (found[0].chunks or (found[0].chunk_id,))
