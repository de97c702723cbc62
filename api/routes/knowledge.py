"""Knowledge bases: create and list them, add documents (pasted text, files and folders under the files root; the
same content is skipped), watch each document's indexing, preview chunking before anything is embedded, browse and
edit chunks, and test retrieval with the components a workflow's retriever runs."""

from __future__ import annotations

from fastapi import APIRouter, Query, status
from sqlmodel import Session

from api.bodies import LimitedRoute
from api.deps import SessionDep
from api.openapi import WRITE, errors
from api.schemas.knowledge import (
    ChunkAdd,
    ChunkEdit,
    ChunkPage,
    ChunkPublic,
    DocumentChange,
    DocumentPublic,
    DocumentsAdd,
    DocumentsAdded,
    KnowledgeBaseCreate,
    KnowledgeBasePublic,
    PreviewRequest,
    QueryRequest,
    QueryResult,
    RecordedQuery,
    ReindexRequest,
    Rerun,
    TestCaseSave,
)
from apps.publishing import apps_using_knowledge_base
from knowledge import bases, generations, lifecycle, queries, search
from knowledge.documents import BadDocument, file_sources, preview, text_source, url_source
from knowledge.models import KbChunk, KbDocument, KnowledgeBase
from knowledge.settings import Chunking, model_window
from nodes.stores import VectorStoreUnavailable
from stackyard.errors import Conflict
from stackyard.settings import get_settings
from store.db import session_scope
from worker.enqueue import enqueue_documents
from workflows.bounds import INT32_MAX, NO_NUL, Text

router = APIRouter(prefix="/api/v1/knowledge-bases", tags=["knowledge"], route_class=LimitedRoute,
                   responses=errors(400, 401, 429))


def base_public(session: Session, base: KnowledgeBase) -> KnowledgeBasePublic:
    counted = lifecycle.counts(session, base.id)
    return KnowledgeBasePublic(**base.model_dump(), status=lifecycle.status(counted, reindexing=base.next_generation
                                                                             is not None),
                               counts=counted, reindex=generations.progress(session, base))


def document_public(document: KbDocument) -> DocumentPublic:
    return DocumentPublic(**document.model_dump())


def chunk_public(chunk: KbChunk) -> ChunkPublic:
    return ChunkPublic(**chunk.model_dump(), length=len(chunk.text))


@router.post("", response_model=KnowledgeBasePublic, status_code=status.HTTP_201_CREATED,
             responses=errors(*WRITE, 409, 422))
def create_knowledge_base(body: KnowledgeBaseCreate, session: SessionDep) -> KnowledgeBasePublic:
    base = bases.create(session, get_settings(), name=body.name, description=body.description,
                        embedding_model=body.embedding_model, chunking=body.chunking, retrieval=body.retrieval)
    return base_public(session, base)


@router.get("", response_model=list[KnowledgeBasePublic])
def list_knowledge_bases(session: SessionDep) -> list[KnowledgeBasePublic]:
    return [base_public(session, base) for base in bases.list_all(session)]


@router.get("/{name}", response_model=KnowledgeBasePublic, responses=errors(404, 422))
def get_knowledge_base(name: Text, session: SessionDep) -> KnowledgeBasePublic:
    return base_public(session, bases.get(session, name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(*WRITE, 404, 409, 422))
def delete_knowledge_base(name: Text) -> None:
    """Delete a knowledge base, its documents, chunks and vectors; refused while a published app reads it."""
    with session_scope() as session:
        base = bases.get(session, name)
        users = apps_using_knowledge_base(session, name)
        if users:
            raise Conflict(f"Knowledge base '{name}' is read by the published app(s) {', '.join(users)}; unpublish "
                           "them or publish versions that do not use it first.")
        kb_id = base.id
        session.delete(base)
    search.drop_generations(kb_id, get_settings())


@router.post("/{name}/reindex", response_model=KnowledgeBasePublic, status_code=status.HTTP_202_ACCEPTED,
             responses=errors(*WRITE, 404, 409, 422, 503))
def reindex(name: Text, body: ReindexRequest) -> KnowledgeBasePublic:
    """Build the next index generation with another embedding model and/or chunking on the workers; the current
    one answers queries until the new one holds every document, then they switch at once. Edited and hand-added
    chunks carry over."""
    with session_scope() as session:
        base = bases.get(session, name)
        again = generations.start(session, base, get_settings(), embedding_model=body.embedding_model,
                                  chunking=body.chunking, apps=apps_using_knowledge_base(session, name))
        public = base_public(session, bases.get(session, name))
    enqueue_documents(again)
    return public


@router.delete("/{name}/reindex", response_model=KnowledgeBasePublic,
               responses=errors(*WRITE, 404, 409, 422, 503))
def cancel_reindex(name: Text) -> KnowledgeBasePublic:
    """Give up the generation being built (e.g. a document the new settings cannot index blocks it); the current
    one keeps answering, and documents already split anew are indexed again for it."""
    with session_scope() as session:
        base = bases.get(session, name)
        abandoned, again = generations.cancel(session, base)
        public = base_public(session, bases.get(session, name))
    enqueue_documents(again)
    try:
        search.drop_generation(base, abandoned, get_settings())
    except Exception as exc:  # noqa: BLE001 - cancelled and committed; say what did not happen, not a bare 500
        name = search.collection_name(base, abandoned)
        raise VectorStoreUnavailable(f"The re-index is cancelled, but collection {name} was not dropped "
                                     f"({type(exc).__name__}: {exc}); drop it when the vector store answers.") from exc
    return public


@router.patch("/{name}/documents/{document_id}", response_model=DocumentPublic,
              responses=errors(*WRITE, 404, 409, 422, 503))
def change_document(name: Text, document_id: Text, body: DocumentChange) -> DocumentPublic:
    """Switch a document off (its chunks stay browsable, none is retrieved) or on, or replace its content; it is
    indexed again, and only its own chunks change."""
    given = [k for k in ("text", "path", "url") if getattr(body, k) is not None]
    if len(given) > 1:
        raise BadDocument(f"Give one new content (text, path or url), not {' and '.join(given)}.", field=given[1])
    with session_scope() as session:
        base = bases.get(session, name)
        document = bases.document(session, base, document_id)
        source = None
        if body.text is not None:
            source = text_source(document.name if document.source == "text" else "text", body.text, field="text")
        elif body.path is not None:
            found = file_sources([body.path], field="path")
            if len(found) != 1:
                raise BadDocument(f"path names {len(found)} files; name the one file that replaces this document.",
                                  field="path")
            source = found[0]
        elif body.url is not None:
            source = url_source(body.url, field="url")
        moved = bases.change_document(session, base, document, enabled=body.enabled, source=source)
    enqueue_documents([moved.id])
    return document_public(moved)


@router.delete("/{name}/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=errors(*WRITE, 404, 409, 422, 503))
def delete_document(name: Text, document_id: Text) -> None:
    """Delete a document with its chunks and their vectors in every generation."""
    with session_scope() as session:
        base = bases.get(session, name)
        base, ever_indexed = generations.delete_document(session, bases.document(session, base, document_id))
        session.expunge_all()
    if not ever_indexed:
        return
    try:
        search.forget_document(base, document_id, get_settings())
    except Exception as exc:  # noqa: BLE001 - the rows are gone; say what did not happen, not a bare 500
        raise VectorStoreUnavailable(f"Document {document_id} is deleted, but its vectors were not removed "
                                     f"({type(exc).__name__}: {exc}); they are dropped with the next re-index.") \
            from exc


@router.post("/{name}/documents", response_model=DocumentsAdded, status_code=status.HTTP_201_CREATED,
             responses=errors(*WRITE, 404, 422, 503))
def add_documents(name: Text, body: DocumentsAdd) -> DocumentsAdded:
    """Queue texts and files for indexing. Every source is checked first (type, size, place): one bad source
    refuses the whole request, and nothing is added."""
    with session_scope() as session:
        base = bases.get(session, name)
        sources = [text_source(t.name, t.text, field=f"texts[{i}]") for i, t in enumerate(body.texts)]
        sources += file_sources(list(body.paths)) if body.paths else []
        sources += [url_source(u, field=f"urls[{i}]") for i, u in enumerate(body.urls)]
        added = bases.add_documents(session, base, sources)
        bases.touch(session, base)
        result = DocumentsAdded(added=[document_public(d) for d in added.added], skipped=added.skipped)
    enqueue_documents([document.id for document in result.added])
    return result


@router.get("/{name}/documents", response_model=list[DocumentPublic], responses=errors(404, 422))
def list_documents(name: Text, session: SessionDep) -> list[DocumentPublic]:
    return [document_public(d) for d in bases.documents(session, bases.get(session, name))]


@router.post("/{name}/documents/{document_id}/retry", response_model=DocumentPublic,
             responses=errors(*WRITE, 404, 409, 422, 503))
def retry_document(name: Text, document_id: Text) -> DocumentPublic:
    """Index a document again (after an error, or to pick up a changed file)."""
    with session_scope() as session:
        document = bases.document(session, bases.get(session, name), document_id)
        moved = lifecycle.requeue(session, document.id)
        if moved is None:
            raise Conflict(f"Document '{document.name}' is {document.state.value}; retry it once it is done or "
                           "failed.")
    enqueue_documents([moved.id])
    return document_public(moved)


@router.post("/{name}/preview", responses=errors(*WRITE, 404, 422))
def preview_chunks(name: Text, body: PreviewRequest, session: SessionDep) -> dict:
    """The first chunks a text or file would make, and how many in all; nothing is stored or embedded."""
    base = bases.get(session, name)
    chunking = (body.chunking or Chunking(**base.chunking)).check(model_window(base.embedding_model, get_settings()))
    if (body.text is None) == (body.path is None):
        raise BadDocument("Give either text or path to preview.", field="text")
    source = text_source("preview", body.text, field="text") if body.text is not None else \
        file_sources([body.path], field="path")[0]
    return preview(source, chunking)


@router.get("/{name}/chunks", response_model=ChunkPage, responses=errors(404, 422))
def list_chunks(name: Text, session: SessionDep, document: str | None = Query(default=None, pattern=NO_NUL),
                q: str | None = Query(default=None, max_length=200, pattern=NO_NUL),
                offset: int = Query(default=0, ge=0, le=INT32_MAX),
                limit: int = Query(default=50, ge=1, le=500)) -> ChunkPage:
    """A page of chunks in document order: one document's (``document``), or those containing ``q``."""
    page, total = bases.chunks(session, bases.get(session, name), document_id=document, search=q, offset=offset,
                               limit=limit)
    return ChunkPage(total=total, chunks=[chunk_public(c) for c in page])


@router.patch("/{name}/chunks/{chunk_id}", response_model=ChunkPublic,
              responses=errors(*WRITE, 404, 409, 422, 503))
def edit_chunk(name: Text, chunk_id: Text, body: ChunkEdit) -> ChunkPublic:
    """Change a chunk's text (only it is embedded again; a re-split keeps it) or switch it off (it is no longer
    retrieved) or on."""
    with session_scope() as session:
        base = bases.get(session, name)
        chunk, document = bases.edit_chunk(session, base, chunk_id, text=body.text, enabled=body.enabled)
        public = chunk_public(chunk)
        session.expunge_all()
    _reembed(base, chunk, document)
    return public


def _reembed(base: KnowledgeBase, chunk: KbChunk, document: KbDocument, *, deleted: bool = False) -> None:
    try:
        search.reindex_chunk(base, chunk, document, get_settings())
    except Exception as exc:  # noqa: BLE001 - the row is saved; say what did not happen, not a bare 500
        done, fix = ("deleted", "retry its document to drop it") if deleted else ("saved", "save it again")
        raise VectorStoreUnavailable(f"Chunk {chunk.id} is {done}, but its vector was not updated "
                                     f"({type(exc).__name__}: {exc}); {fix} once the vector store answers.") from exc


@router.post("/{name}/documents/{document_id}/chunks", response_model=ChunkPublic,
             status_code=status.HTTP_201_CREATED, responses=errors(*WRITE, 404, 409, 422, 503))
def add_chunk(name: Text, document_id: Text, body: ChunkAdd) -> ChunkPublic:
    """Add a chunk by hand after a document's last one; it is embedded now and kept through re-indexing."""
    with session_scope() as session:
        base = bases.get(session, name)
        chunk, document = bases.add_chunk(session, base, bases.document(session, base, document_id), body.text)
        public = chunk_public(chunk)
        session.expunge_all()
    _reembed(base, chunk, document)
    return public


@router.delete("/{name}/chunks/{chunk_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=errors(*WRITE, 404, 409, 422, 503))
def delete_chunk(name: Text, chunk_id: Text) -> None:
    """Delete a chunk and its vectors. A re-index splits its document again: a chunk the split made comes back
    (switch it off instead to keep it out); one added by hand does not."""
    with session_scope() as session:
        base = bases.get(session, name)
        chunk, document = bases.delete_chunk(session, base, chunk_id)
        session.expunge_all()
    chunk.enabled = False
    _reembed(base, chunk, document, deleted=True)


@router.post("/{name}/query", response_model=QueryResult, responses=errors(*WRITE, 404, 409, 422))
def query(name: Text, body: QueryRequest) -> QueryResult:
    """The chunks a workflow's retriever on this knowledge base would return for ``query``, with their scores;
    recorded, to be run again or saved as a test case."""
    with session_scope() as session:
        answer = queries.ask(session, bases.get(session, name), body.query, get_settings(), mode=body.mode,
                             top_k=body.top_k, score_threshold=body.score_threshold, rank=body.rank)
    return QueryResult(**vars(answer))


@router.get("/{name}/queries", response_model=list[RecordedQuery], responses=errors(404, 422))
def list_queries(name: Text, session: SessionDep, limit: int = Query(default=50, ge=1, le=500)) -> list[RecordedQuery]:
    """Recorded retrieval tests, newest first."""
    return [RecordedQuery(**row.model_dump()) for row in queries.history(session, bases.get(session, name),
                                                                         limit=limit)]


@router.post("/{name}/queries/{query_id}/rerun", response_model=Rerun, responses=errors(*WRITE, 404, 409, 422))
def rerun_query(name: Text, query_id: Text) -> Rerun:
    """Ask a recorded query again with its settings, and say which chunks it gained or lost."""
    with session_scope() as session:
        answer, change = queries.rerun(session, bases.get(session, name), query_id, get_settings())
    return Rerun(answer=QueryResult(**vars(answer)), **change)


@router.post("/{name}/queries/{query_id}/test-case", response_model=RecordedQuery,
             responses=errors(*WRITE, 404, 422))
def save_test_case(name: Text, query_id: Text, body: TestCaseSave) -> RecordedQuery:
    """Keep a recorded query as a test case: its right sources are the hits named (default: the first), stored
    as document ids and gold snippets so the label survives re-chunking."""
    with session_scope() as session:
        row = queries.save_case(session, bases.get(session, name), query_id, body.chunk_ids)
        return RecordedQuery(**row.model_dump())
