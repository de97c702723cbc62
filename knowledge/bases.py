"""Knowledge bases and their documents and chunks as stored: create, read, add documents (each content once),
browse and edit chunks. Indexing happens on the workers (``knowledge.indexing``); the caller sends the ids this
returns after it commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from knowledge.documents import BadDocument, Source
from knowledge.lifecycle import requeue
from knowledge.models import (
    ADDED_BY_HAND,
    EDITED_UNDER,
    TEXT_EDITED,
    DocState,
    KbChunk,
    KbDocument,
    KnowledgeBase,
    chunking_key,
)
from knowledge.settings import DEFAULT_EMBEDDING_MODEL, BadKnowledgeSettings, Chunking, Retrieval, model_window
from stackyard.errors import Conflict, NotFound
from stackyard.settings import Settings
from store.clock import utcnow
from store.db import race_safe, session_scope

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_CHUNK_CHARS = 20_000


def create(session: Session, settings: Settings, *, name: str, description: str = "",
           embedding_model: str | None = None, chunking: Chunking | None = None,
           retrieval: Retrieval | None = None) -> KnowledgeBase:
    if not NAME.fullmatch(name):
        raise BadKnowledgeSettings(f"name {name!r} must be 1-100 letters, digits, '_', '.' or '-', starting with a "
                                   "letter or digit (workflows refer to it by name).", field="name")
    model = embedding_model or DEFAULT_EMBEDDING_MODEL
    if settings.local_model_path(model) is None:
        raise BadKnowledgeSettings(
            f"embedding_model {model!r} is not on this machine: map it to a folder in STACKYARD_MODEL_PATHS, or use "
            f"{DEFAULT_EMBEDDING_MODEL!r} (bundled).", field="embedding_model")
    chunking = (chunking or Chunking()).check(model_window(model, settings))
    retrieval = (retrieval or Retrieval()).check()
    if retrieval.ranker and settings.local_model_path(retrieval.ranker) is None:
        raise BadKnowledgeSettings(f"retrieval.ranker {retrieval.ranker!r} is not on this machine: map it to a folder "
                                   "in STACKYARD_MODEL_PATHS, or leave it out.", field="retrieval.ranker")

    def write() -> KnowledgeBase:
        if session.exec(select(KnowledgeBase.id).where(KnowledgeBase.name == name)).first():
            raise Conflict(f"A knowledge base named '{name}' exists; pick another name or add documents to it.")
        base = KnowledgeBase(name=name, description=description, embedding_model=model,
                             chunking=chunking.model_dump(), retrieval=retrieval.model_dump())
        session.add(base)
        session.flush()
        return base

    return race_safe(session, write, what=f"Creating knowledge base '{name}'")


def get(session: Session, name: str) -> KnowledgeBase:
    base = session.exec(select(KnowledgeBase).where(KnowledgeBase.name == name)).first()
    if base is None:
        raise NotFound(f"No knowledge base '{name}'; list them with GET /api/v1/knowledge-bases.")
    return base


def list_all(session: Session) -> list[KnowledgeBase]:
    return list(session.exec(select(KnowledgeBase).order_by(col(KnowledgeBase.name))).all())


@dataclass
class Added:
    added: list[KbDocument] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)   # same content as a document it already has


def add_documents(session: Session, base: KnowledgeBase, sources: list[Source]) -> Added:
    """Queue each source as a document, skipping content the base already holds (or that this call repeats)."""
    if not sources:
        raise BadDocument("Give texts or paths to add.", field="texts")
    # Run again after losing a race (another request added the same content first): its rows are then skipped.
    return race_safe(session, lambda: _add(session, base, sources), what=f"Adding documents to '{base.name}'",
                     gone=f"Knowledge base '{base.name}' was deleted while documents were added; nothing was stored.")


def _add(session: Session, base: KnowledgeBase, sources: list[Source]) -> Added:
    hashes = {s.content_hash for s in sources}
    have = dict(session.exec(select(KbDocument.content_hash, KbDocument.id).where(
        KbDocument.kb_id == base.id, col(KbDocument.content_hash).in_(hashes))).all())
    result = Added()
    for source in sources:
        if source.content_hash in have:
            result.skipped.append({"name": source.name, "document_id": have[source.content_hash],
                                   "reason": "the same content is already in this knowledge base"})
            continue
        # a file's name is its path relative to the files root (documents.file_sources); a URL's, the URL
        document = KbDocument(kb_id=base.id, name=source.name, source=source.kind, path=_where(source),
                              text=source.text, content_hash=source.content_hash, size_bytes=source.size_bytes)
        session.add(document)
        have[source.content_hash] = document.id
        result.added.append(document)
    session.flush()
    return result


def change_document(session: Session, base: KnowledgeBase, document: KbDocument, *, enabled: bool | None = None,
                    source: Source | None = None) -> KbDocument:
    """Switch a document on or off, or give it new content (a file, pasted text or URL); queued again, so a worker
    writes (or removes) its vectors. Refused while it is being indexed, or when the new content is another
    document's."""
    if document.state not in (DocState.DONE, DocState.ERROR):
        raise Conflict(f"Document '{document.name}' is {document.state.value}; change it once it is done or failed.")
    if source is not None:
        other = session.exec(select(KbDocument.id).where(KbDocument.kb_id == base.id, KbDocument.id != document.id,
                                                          KbDocument.content_hash == source.content_hash)).first()
        if other:
            raise Conflict(f"Knowledge base '{base.name}' already holds that content as document '{other}'; delete "
                           "one of them instead.")

    def apply() -> None:
        if source is not None:
            document.name, document.source, document.text = source.name, source.kind, source.text
            document.path = _where(source)
            document.content_hash, document.size_bytes = source.content_hash, source.size_bytes
            for chunk in session.exec(select(KbChunk).where(KbChunk.document_id == document.id, col(KbChunk.edited))):
                if not chunk.meta.get(ADDED_BY_HAND):      # an edit of the old content: it does not apply to the new
                    session.delete(chunk)
        if enabled is not None:
            document.enabled = enabled
        session.add(document)
        session.flush()

    # another request giving the same content to another document at once: a Conflict, not a database error
    race_safe(session, apply, what=f"Changing document '{document.name}'",
              taken=f"Knowledge base '{base.name}' was given that content as another document just now; delete one "
                    "of them instead.")
    moved = requeue(session, document.id)
    if moved is None:            # a worker took it meanwhile: nothing is kept (the caller's transaction rolls back)
        raise Conflict(f"Document '{document.name}' started indexing meanwhile; change it once it is done.")
    return moved


def _where(source: Source) -> str | None:
    """A document's path: a file's, relative to the files root (its name), or the whole URL."""
    return source.url or (source.name if source.path else None)


def documents(session: Session, base: KnowledgeBase) -> list[KbDocument]:
    return list(session.exec(select(KbDocument).where(KbDocument.kb_id == base.id)
                             .order_by(col(KbDocument.created_at), col(KbDocument.name))).all())


def document(session: Session, base: KnowledgeBase, document_id: str) -> KbDocument:
    found = session.get(KbDocument, document_id, populate_existing=True)
    if found is None or found.kb_id != base.id:
        raise NotFound(f"Knowledge base '{base.name}' has no document '{document_id}'; list them with "
                       f"GET /api/v1/knowledge-bases/{base.name}/documents.")
    return found


def chunks(session: Session, base: KnowledgeBase, *, document_id: str | None = None, search: str | None = None,
           offset: int = 0, limit: int = 50) -> tuple[list[KbChunk], int]:
    """A page of a base's chunks in document order (one document's, or those containing ``search``), and how
    many match in all."""
    where = [KbChunk.kb_id == base.id]
    if document_id:
        where.append(KbChunk.document_id == document_id)
    if search:
        where.append(col(KbChunk.text).contains(search, autoescape=True))
    total = session.exec(select(func.count()).select_from(KbChunk).where(*where)).one()
    page = session.exec(select(KbChunk).where(*where).order_by(col(KbChunk.document_id), col(KbChunk.position))
                        .offset(offset).limit(limit)).all()
    return list(page), int(total)


def edit_chunk(session: Session, base: KnowledgeBase, chunk_id: str, *, text: str | None = None,
               enabled: bool | None = None) -> tuple[KbChunk, KbDocument]:
    """Change a chunk's text (kept through re-splits from then on) or switch it off; the caller re-embeds it."""
    chunk = _chunk(session, base, chunk_id)
    owner = _settled(session, base, chunk.document_id)
    if text is not None:
        _check_text(text)
        chunk.text, chunk.edited = text, True
        chunk.meta = {**chunk.meta, TEXT_EDITED: True}
    if enabled is not None:
        chunk.enabled = enabled
        chunk.edited = True        # a re-split keeps it switched off (or on) at its position
    if chunk.edited and not chunk.meta.get(ADDED_BY_HAND):
        # the chunking it was cut under: a re-split under another one cannot keep it at its position
        cut = base.next_chunking if base.next_generation and owner.generation == base.next_generation \
            else base.chunking
        chunk.meta = {**chunk.meta, EDITED_UNDER: chunking_key(cut)}
    session.add(chunk)
    session.flush()
    return chunk, owner


def _settled(session: Session, base: KnowledgeBase, document_id: str) -> KbDocument:
    """The chunk's document, if no worker is about to rewrite its chunks (it is done or failed)."""
    found = document(session, base, document_id)
    if found.state not in (DocState.DONE, DocState.ERROR):
        raise Conflict(f"Document '{found.name}' is {found.state.value}: its chunks are being rewritten. "
                       "Change them once it is done.")
    return found


def chunks_by_id(session: Session, base: KnowledgeBase, ids: list[str]) -> list[KbChunk]:
    return list(session.exec(select(KbChunk).where(KbChunk.kb_id == base.id, col(KbChunk.id).in_(ids))).all())


def _chunk(session: Session, base: KnowledgeBase, chunk_id: str) -> KbChunk:
    chunk = session.get(KbChunk, chunk_id)
    if chunk is None or chunk.kb_id != base.id:
        raise NotFound(f"Knowledge base '{base.name}' has no chunk '{chunk_id}'.")
    return chunk


def add_chunk(session: Session, base: KnowledgeBase, document: KbDocument, text: str) -> tuple[KbChunk, KbDocument]:
    """A chunk written by hand after the document's last one; kept as it is through re-splits and re-indexing."""
    _check_text(text)
    _settled(session, base, document.id)
    last = session.exec(select(func.max(KbChunk.position)).where(KbChunk.document_id == document.id)).one()
    chunk = KbChunk(kb_id=base.id, document_id=document.id, position=(last if last is not None else -1) + 1,
                    text=text, meta={ADDED_BY_HAND: True}, edited=True)
    session.add(chunk)
    session.flush()
    return chunk, document


def delete_chunk(session: Session, base: KnowledgeBase, chunk_id: str) -> tuple[KbChunk, KbDocument]:
    chunk = _chunk(session, base, chunk_id)
    owner = _settled(session, base, chunk.document_id)
    session.delete(chunk)
    session.flush()
    return chunk, owner


def _check_text(text: str) -> None:
    if not text.strip() or len(text) > MAX_CHUNK_CHARS:
        raise BadKnowledgeSettings(f"text must be 1-{MAX_CHUNK_CHARS:,} characters.", field="text")


def touch(session: Session, base: KnowledgeBase) -> None:
    base.updated_at = utcnow()
    session.add(base)


def serving_generations(names: frozenset[str] | set[str]) -> dict[str, tuple[str, int, bool]]:
    """For each named knowledge base: its id (a base deleted and made again under the name is another), the
    index generation it serves now, and whether any document is done in it (before that its collection does not
    exist, and a store opened then never looks again). Absent: no such base."""
    if not names:
        return {}
    indexed = (select(KbDocument.id).where(KbDocument.kb_id == KnowledgeBase.id,
                                          KbDocument.generation == KnowledgeBase.generation,
                                          KbDocument.state == DocState.DONE).exists())
    with session_scope() as session:
        return {name: (kb_id, generation, bool(ready)) for name, kb_id, generation, ready in session.exec(
            select(KnowledgeBase.name, KnowledgeBase.id, KnowledgeBase.generation, indexed).where(
                col(KnowledgeBase.name).in_(sorted(names)))).all()}


def document_names(session: Session, ids: set[str | None]) -> dict[str, str]:
    wanted = [i for i in ids if i]
    if not wanted:
        return {}
    return dict(session.exec(select(KbDocument.id, KbDocument.name).where(col(KbDocument.id).in_(wanted))).all())
