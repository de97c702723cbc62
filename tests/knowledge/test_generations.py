"""Re-index generations as stored: a re-index queues every document for the next generation while the current one
keeps serving, an attempt that began before it is sent again instead of counted, and the last document in
switches the base's generation, model and chunking in one step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from knowledge import bases, generations, lifecycle
from knowledge.documents import text_source
from knowledge.models import DocState, KbDocument, KnowledgeBase
from knowledge.settings import BadKnowledgeSettings, Chunking
from stackyard.errors import Conflict
from stackyard.settings import get_settings
from store.clock import utcnow
from store.db import session_scope


def add(texts: list[str]) -> list[str]:
    with session_scope() as session:
        base = bases.get(session, "handbook")
        added = bases.add_documents(session, base, [text_source(f"doc{i}", t) for i, t in enumerate(texts)])
        return [d.id for d in added.added]


def index(document_id: str, generation: int | None = None) -> DocState:
    """What a worker does to a queued document, without reading or embedding it."""
    with session_scope() as session:
        claimed = lifecycle.claim(session, document_id)
        target = generations.target(session.get(KnowledgeBase, claimed.kb_id))
        step = lifecycle.embedding(session, lifecycle.splitting(session, claimed), 0.5)
    with session_scope() as session:
        return generations.finish(session, step, generation or target.generation, 2).state


def base() -> KnowledgeBase:
    with session_scope() as session:
        return bases.get(session, "handbook")


@pytest.fixture
def documents(database) -> list[str]:
    with session_scope() as session:
        bases.create(session, get_settings(), name="handbook", chunking=Chunking(length=50, overlap=5))
    ids = add(["Thirty days of vacation.", "Bicycles go in the cellar."])
    assert [index(i) for i in ids] == [DocState.DONE, DocState.DONE]
    return ids


def test_a_reindex_builds_the_next_generation_and_switches_when_the_last_document_is_in(documents):
    with session_scope() as session:
        again = generations.start(session, bases.get(session, "handbook"), get_settings(),
                                  chunking=Chunking(length=80, overlap=0))
    assert sorted(again) == sorted(documents)
    building = base()
    assert (building.generation, building.next_generation, building.next_chunking["length"]) == (1, 2, 80)
    assert generations.target(building).generation == 2 and building.chunking["length"] == 50
    with session_scope() as session:
        counted = lifecycle.counts(session, building.id)
        assert lifecycle.status(counted, reindexing=True) == "reindexing"
        assert generations.progress(session, building)["done"] == 0

    assert index(documents[0]) == DocState.DONE
    assert base().generation == 1                      # one document still missing: the old one serves
    assert index(documents[1]) == DocState.DONE
    switched = base()
    assert (switched.generation, switched.next_generation, switched.chunking["length"]) == (2, None, 80)
    assert (switched.retired_generation, switched.retired_at is not None) == (1, True)


def test_an_attempt_that_began_before_the_reindex_is_sent_again_not_counted(documents):
    late = add(["The canteen serves soup on Fridays."])[0]
    with session_scope() as session:
        claimed = lifecycle.claim(session, late)                  # a worker starts on generation 1 ...
        step = lifecycle.embedding(session, lifecycle.splitting(session, claimed), 0.5)
    with session_scope() as session:                              # ... a re-index begins meanwhile
        generations.start(session, bases.get(session, "handbook"), get_settings())
    with session_scope() as session:
        assert generations.finish(session, step, 1, 3).state == DocState.QUEUED
    assert [index(i) for i in documents] == [DocState.DONE, DocState.DONE]
    assert base().generation == 1                      # the late document is not in generation 2 yet
    assert index(late) == DocState.DONE
    assert base().generation == 2


def test_a_base_without_documents_switches_at_once(database):
    with session_scope() as session:
        empty = bases.create(session, get_settings(), name="empty")
        assert generations.start(session, empty, get_settings(), chunking=Chunking(length=30, overlap=3)) == []
    with session_scope() as session:
        empty = bases.get(session, "empty")
        assert (empty.generation, empty.next_generation, empty.retired_generation) == (2, None, None)


def test_refusals_name_the_fix_and_write_nothing(documents):
    with session_scope() as session:
        handbook = bases.get(session, "handbook")
        with pytest.raises(BadKnowledgeSettings) as beyond:
            generations.start(session, handbook, get_settings(), chunking=Chunking(length=5000, overlap=0))
        assert beyond.value.field == "chunking.length"
        with pytest.raises(BadKnowledgeSettings) as missing:
            generations.start(session, handbook, get_settings(), embedding_model="acme/not-here")
        assert "STACKYARD_MODEL_PATHS" in str(missing.value)
    with session_scope() as session:                   # nothing half written by the refusals
        assert {d.state for d in session.exec(select(KbDocument)).all()} == {DocState.DONE}
        assert bases.get(session, "handbook").next_generation is None
        generations.start(session, bases.get(session, "handbook"), get_settings())
    with session_scope() as session, pytest.raises(Conflict, match="already re-indexing"):
        generations.start(session, bases.get(session, "handbook"), get_settings())
    with session_scope() as session:
        assert {d.state for d in session.exec(select(KbDocument)).all()} == {DocState.QUEUED}
        assert bases.get(session, "handbook").next_generation == 2


def test_a_retired_generation_is_listed_only_after_its_grace(documents):
    with session_scope() as session:
        generations.start(session, bases.get(session, "handbook"), get_settings())
    for document_id in documents:
        index(document_id)
    switched = base()
    with session_scope() as session:
        assert generations.retired(session, before=utcnow() - timedelta(seconds=60)) == []
        assert generations.retired(session, before=utcnow() + timedelta(seconds=1)) == [(switched.id, 1)]
        generations.forget_retired(session, switched.id, 1)
    with session_scope() as session:
        assert generations.retired(session, before=utcnow() + timedelta(seconds=1)) == []
        assert generations.start(session, bases.get(session, "handbook"), get_settings())   # next is 3
    assert base().next_generation == 3


def test_two_reindex_requests_at_once_start_one_generation(documents):
    import threading

    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def reindex(length: int) -> None:
        barrier.wait()
        try:
            with session_scope() as session:
                generations.start(session, bases.get(session, "handbook"), get_settings(),
                                  chunking=Chunking(length=length, overlap=0))
            outcomes.append(f"started {length}")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=reindex, args=(length,)) for length in (60, 70)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    refused, started = sorted(outcomes)
    assert refused == "refused" and started.startswith("started")
    assert base().next_chunking["length"] == int(started.split()[1])


def test_an_attempt_finishing_while_a_reindex_is_being_started_waits_for_it_and_goes_again(documents):
    import threading
    import time

    late = add(["The canteen serves soup on Fridays."])[0]
    with session_scope() as session:
        claimed = lifecycle.claim(session, late)
        step = lifecycle.embedding(session, lifecycle.splitting(session, claimed), 0.5)
    finished: list[DocState] = []

    def finish() -> None:
        with session_scope() as session:
            finished.append(generations.finish(session, step, 1, 3).state)

    with session_scope() as session:                   # the re-index is written but not committed yet ...
        generations.start(session, bases.get(session, "handbook"), get_settings())
        worker = threading.Thread(target=finish)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive() and finished == []    # ... so the attempt's finish waits for the base's row
    worker.join(timeout=30)
    assert finished == [DocState.QUEUED]               # and then sees the re-index: indexed again, not counted


def test_a_cancelled_reindex_leaves_the_current_generation_and_indexes_again_what_it_had_cut(documents):
    with session_scope() as session:
        generations.start(session, bases.get(session, "handbook"), get_settings(), chunking=Chunking(length=80))
    assert index(documents[0]) == DocState.DONE        # in generation 2, cut at 80
    with session_scope() as session:
        abandoned, again = generations.cancel(session, bases.get(session, "handbook"))
    assert (abandoned, again) == (2, [documents[0]])
    current = base()
    assert (current.generation, current.next_generation, current.chunking["length"]) == (1, None, 50)
    assert [index(d) for d in documents] == [DocState.DONE, DocState.DONE]   # the other was queued: cut for 1
    with session_scope() as session:
        assert {d.generation for d in bases.documents(session, bases.get(session, "handbook"))} == {1}
        with pytest.raises(Conflict, match="is not re-indexing"):
            generations.cancel(session, bases.get(session, "handbook"))


def test_a_new_model_is_refused_while_published_apps_read_the_base(documents, monkeypatch):
    import json

    from stackyard.settings import reset_settings_cache

    settings = get_settings()
    minilm = settings.local_model_path("sentence-transformers/all-MiniLM-L6-v2")
    monkeypatch.setenv("STACKYARD_MODEL_PATHS", json.dumps({"acme/other-minilm": str(minilm)}))
    reset_settings_cache()
    with session_scope() as session, pytest.raises(Conflict, match="Published app\\(s\\) support read"):
        generations.start(session, bases.get(session, "handbook"), get_settings(), embedding_model="acme/other-minilm",
                          apps=["support"])
    with session_scope() as session:                   # the same model with another chunking is fine
        generations.start(session, bases.get(session, "handbook"), get_settings(), chunking=Chunking(length=70),
                          apps=["support"])
    with session_scope() as session:
        generations.cancel(session, bases.get(session, "handbook"))
    with session_scope() as session:                   # and a new model with no app reading the base
        generations.start(session, bases.get(session, "handbook"), get_settings(), embedding_model="acme/other-minilm")
    assert base().next_embedding_model == "acme/other-minilm"
