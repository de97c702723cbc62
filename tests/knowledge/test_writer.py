"""The "Knowledge base writer" node on real PostgreSQL, milvus-lite and MiniLM: the ingest template adds a mixed
folder to a base as its documents (the base's chunking, the same content skipped on a second run), what it sent
is indexed and found, and a bad base name or too many documents fail the run naming the fix with nothing added."""

from __future__ import annotations

from pathlib import Path

import pytest
from haystack import Document

from knowledge import bases, search, writer
from knowledge.indexing import index_document
from knowledge.models import DocState
from knowledge.settings import Chunking
from nodes.errors import NodeInputError
from stackyard.settings import get_settings
from store.db import session_scope
from tests.support.documents import DOCUMENT_FACTS, write_mixed_documents
from workflows.availability import warnings
from workflows.execute import run_pipeline
from workflows.io import import_text
from workflows.templates import template_path
from workflows.validation import build_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database", ["postgresql"], indirect=True)]


def documents() -> list:
    with session_scope() as session:
        found = bases.documents(session, bases.get(session, "handbook"))
        session.expunge_all()
    return found


def test_the_ingest_template_adds_files_as_documents_of_the_base_once(database, milvus, data_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    write_mixed_documents(data_dir / "files" / "library")
    spec = import_text(template_path("ingest_knowledge").read_text())
    [missing] = warnings(spec)
    assert missing.code == "knowledge_base_missing" and "Create it on /knowledge" in missing.message
    with session_scope() as session:
        bases.create(session, get_settings(), name="handbook", chunking=Chunking(length=30, overlap=0))
    assert warnings(spec) == []
    sent: list[str] = []
    monkeypatch.setattr(writer, "_send", sent.extend)      # what a worker's sender gets (worker.tasks registers it)

    pipeline = build_pipeline(spec)
    outputs = run_pipeline(spec, pipeline, {"files": ["library"]})
    assert len(outputs["added"]) == len(DOCUMENT_FACTS) and outputs["skipped"] == [] and sent == outputs["added"]
    assert sorted(d.name for d in documents()) == sorted(DOCUMENT_FACTS)
    assert {d.state for d in documents()} == {DocState.QUEUED}

    again = run_pipeline(spec, pipeline, {"files": ["library"]})
    assert again["added"] == [] and len(again["skipped"]) == len(DOCUMENT_FACTS)
    assert {s["reason"] for s in again["skipped"]} == {"the same content is already in this knowledge base"}
    assert len(documents()) == len(DOCUMENT_FACTS) and len(sent) == len(DOCUMENT_FACTS)

    assert {index_document(d) for d in sent} == {DocState.DONE}
    with session_scope() as session:
        base = bases.get(session, "handbook")
    hits = search.retrieve(base, "What does the marsh quillhog eat?", get_settings(), top_k=1)
    assert DOCUMENT_FACTS["quillhog.md"]["key"] in hits[0].text
    assert hits[0].meta["kb_document_id"] in sent


def test_a_missing_base_or_too_many_documents_fail_naming_the_fix_and_empty_ones_are_skipped(database, milvus,
                                                                                              monkeypatch):
    with pytest.raises(NodeInputError, match="No knowledge base 'nowhere': create it on /knowledge") as refused:
        writer.KnowledgeBaseWriter(knowledge_base="nowhere").run(documents=[Document(content="text")])
    assert refused.value.field == "knowledge_base"
    with pytest.raises(NodeInputError, match="name the knowledge base"):
        writer.KnowledgeBaseWriter(knowledge_base=" ").run(documents=[Document(content="text")])
    spec = import_text(template_path("ingest_knowledge").read_text())
    spec.components["knowledge"].init_parameters["knowledge_base"] = ""      # a node just dropped: warned
    assert [w.message for w in warnings(spec)] == ["Node 'knowledge' names no knowledge base to add documents to; "
                                                   "pick one (or create it on /knowledge). Its runs fail until then."]
    with session_scope() as session:
        bases.create(session, get_settings(), name="handbook")
    node = writer.KnowledgeBaseWriter(knowledge_base="handbook")
    monkeypatch.setattr(writer, "MAX_FILES", 2)
    with pytest.raises(NodeInputError, match="at most 2 at a time"):
        node.run(documents=[Document(content=f"text {n}") for n in range(3)])
    made = node.run(documents=[Document(content="  ", meta={"file_path": "blank.txt"}),
                               Document(content="Thirty days of vacation.")])
    assert [s["name"] for s in made["skipped"]] == ["blank.txt"] and len(made["added"]) == 1
    assert [(d.name, d.source, d.text) for d in documents()] == [("document 2", "text", "Thirty days of vacation.")]
