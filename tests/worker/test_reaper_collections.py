"""The reaper's clean-up of knowledge-base collections on real milvus-lite: a generation a re-index replaced is
dropped only after its grace, and the collections of a deleted base (a worker's last batch after the delete)
are dropped, while every live base's are kept."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from knowledge import bases, generations, search
from knowledge.documents import text_source
from knowledge.indexing import index_document
from knowledge.models import DocState, KnowledgeBase
from knowledge.settings import Chunking
from nodes.stores import list_collections
from stackyard.settings import get_settings
from store.db import session_scope
from worker.reaper import drop_orphan_collections, drop_retired_generations

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database", ["postgresql"], indirect=True)]


def filled(name: str) -> KnowledgeBase:
    with session_scope() as session:
        base = bases.create(session, get_settings(), name=name, chunking=Chunking(length=10, overlap=0))
        [document] = bases.add_documents(session, base, [text_source("a", f"{name} has some words in it.")]).added
    assert index_document(document.id) == DocState.DONE
    with session_scope() as session:
        return bases.get(session, name)


def test_replaced_generations_wait_for_their_grace_and_deleted_bases_leave_nothing(database, milvus):
    settings = get_settings()
    kept, gone = filled("kept"), filled("gone")
    with session_scope() as session:
        again = generations.start(session, bases.get(session, "kept"), settings, chunking=Chunking(length=20, overlap=0))
    assert [index_document(d) for d in again] == [DocState.DONE]
    assert {f"kb_{kept.id}_g1", f"kb_{kept.id}_g2", f"kb_{gone.id}_g1"} <= set(list_collections(settings))

    assert drop_retired_generations() == []                       # four leases have not passed
    assert drop_retired_generations(grace_seconds=0) == [f"kb_{kept.id}_g1"]
    assert drop_retired_generations(grace_seconds=0) == []        # forgotten once dropped

    with session_scope() as session:                               # deleted without its collections
        session.execute(delete(KnowledgeBase).where(KnowledgeBase.id == gone.id))
    assert drop_orphan_collections() == [f"kb_{gone.id}_g1"]
    assert {n for n in list_collections(settings) if n.startswith("kb_")} == {f"kb_{kept.id}_g2"}
    assert search.retrieve(bases_get("kept"), "words", settings, mode="keyword")[0].text.startswith("kept has")


def bases_get(name: str) -> KnowledgeBase:
    with session_scope() as session:
        return bases.get(session, name)
