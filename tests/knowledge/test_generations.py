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


def test_a_base_without_documents_switches_at_once_and_a_second_reindex_waits(database):
    with session_scope() as session:
        empty = bases.create(session, get_settings(), name="empty")
        assert generations.start(session, empty, get_settings(), chunking=Chunking(length=30, overlap=3)) == []
    with session_scope() as session:
        empty = bases.get(session, "empty")
        assert (empty.generation, empty.next_generation, empty.retired_generation) == (2, None, None)


def test_refusals_name_the_fix(documents):
    with session_scope() as session:
        handbook = bases.get(session, "handbook")
        with pytest.raises(BadKnowledgeSettings) as beyond:
            generations.start(session, handbook, get_settings(), chunking=Chunking(length=5000, overlap=0))
        assert beyond.value.field == "chunking.length"
        with pytest.raises(BadKnowledgeSettings) as missing:
            generations.start(session, handbook, get_settings(), embedding_model="acme/not-here")
        assert "STACKYARD_MODEL_PATHS" in str(missing.value)
        generations.start(session, handbook, get_settings())
    with session_scope() as session, pytest.raises(Conflict, match="already re-indexing"):
        generations.start(session, bases.get(session, "handbook"), get_settings())
    with session_scope() as session:                   # nothing half written by the refusals
        assert {d.state for d in session.exec(select(KbDocument)).all()} == {DocState.QUEUED}


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
