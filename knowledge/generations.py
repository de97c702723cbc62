"""Index generations: a re-index builds the next one on the workers while the current one keeps serving, and one
row update switches to it when every document is in it.

A document is always indexed into its base's *target* generation: the next one while a re-index is building, the
serving one otherwise. A document whose attempt began before the target moved (a re-index started or was
cancelled) is queued again instead of counted (:func:`finish`). The last document to land in the next generation
switches the base (its ``generation``, ``embedding_model`` and ``chunking`` together); the old collection is
retired and dropped by the reaper once no query can still be reading it (:func:`retired`). Every read-then-write
here locks the base's row first (SQLite: the writer lock), so completions, starts, cancels and the switch take
turns. Chunk text lives in SQL: hand-added chunks carry over, and edits carry over as ``knowledge.indexing``
says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from knowledge import lifecycle
from knowledge.models import DocState, KbDocument, KnowledgeBase
from knowledge.settings import BadKnowledgeSettings, Chunking, model_window
from stackyard.errors import Conflict
from stackyard.settings import Settings
from store.clock import utcnow
from store.db import lock_sqlite_for_writing


@dataclass(frozen=True)
class Target:
    """Where and how a document is indexed now."""

    generation: int
    embedding_model: str
    chunking: Chunking


def target(base: KnowledgeBase) -> Target:
    if base.next_generation is not None:
        return Target(base.next_generation, base.next_embedding_model or base.embedding_model,
                      Chunking(**(base.next_chunking or base.chunking)))
    return Target(base.generation, base.embedding_model, Chunking(**base.chunking))


def start(session: Session, base: KnowledgeBase, settings: Settings, *, embedding_model: str | None = None,
          chunking: Chunking | None = None, apps: list[str] | None = None) -> list[str]:
    """Begin building the next generation with a new model and/or chunking; returns the documents to send. A
    base with no documents switches at once. ``apps``: the published apps that read the base: a new model is
    refused while they do (their query embedder is fixed in their version)."""
    model = embedding_model or base.embedding_model
    if settings.local_model_path(model) is None:
        raise BadKnowledgeSettings(f"embedding_model {model!r} is not on this machine: map it to a folder in "
                                   "STACKYARD_MODEL_PATHS.", field="embedding_model")
    if model != base.embedding_model and apps:
        raise Conflict(f"Published app(s) {', '.join(apps)} read knowledge base '{base.name}' with queries embedded "
                       f"by '{base.embedding_model}'; after a switch to '{model}' their hits would be noise. Re-index "
                       "into a new base, point a new version at it and publish that, or unpublish them first.")
    chunking = (chunking or Chunking(**base.chunking)).check(model_window(model, settings))
    locked = lock(session, base.id)       # two re-index requests take turns: the second finds the first
    if locked.next_generation is not None:
        raise Conflict(f"Knowledge base '{base.name}' is already re-indexing into generation "
                       f"{locked.next_generation}; wait until it switches, or cancel it.")
    locked.next_generation = _newest(locked) + 1
    locked.next_embedding_model, locked.next_chunking = model, chunking.model_dump()
    locked.updated_at = utcnow()
    session.add(locked)
    session.flush()
    ids = session.exec(select(KbDocument.id).where(KbDocument.kb_id == base.id)).all()
    again = [moved.id for document_id in ids if (moved := lifecycle.requeue(session, document_id)) is not None]
    maybe_switch(session, base.id)
    return again


def cancel(session: Session, base: KnowledgeBase) -> tuple[int, list[str]]:
    """Give up the generation being built (a document that cannot be indexed with the new settings blocks it);
    the current one keeps answering. Returns the abandoned generation (its collection is the caller's to drop)
    and the documents to send again: those already indexed into it were split anew, so their chunks are
    indexed again for the current one. One still in work is sent again when it finishes (:func:`finish`)."""
    locked = lock(session, base.id)
    if locked.next_generation is None:
        raise Conflict(f"Knowledge base '{base.name}' is not re-indexing.")
    abandoned = locked.next_generation
    locked.next_generation = locked.next_embedding_model = locked.next_chunking = None
    session.add(locked)
    session.flush()
    redo = session.exec(select(KbDocument.id).where(
        KbDocument.kb_id == base.id, (col(KbDocument.generation) == abandoned) | (col(KbDocument.state) ==
                                                                                 DocState.ERROR))).all()
    return abandoned, [moved.id for document_id in redo if (moved := lifecycle.requeue(session, document_id))]


def finish(session: Session, document: KbDocument, generation: int, chunk_count: int) -> KbDocument:
    """The attempt that indexed ``document`` into ``generation`` is done: recorded as done there (switching the
    base if it was the last one the next generation waited for), or queued again when the base's target moved
    meanwhile (a re-index began, or was cancelled; the caller sends it)."""
    base = lock(session, document.kb_id)
    if generation != target(base).generation:
        return lifecycle.step_back(session, document)
    finished = lifecycle.done(session, document, chunk_count, generation)
    maybe_switch(session, base.id)
    return finished


def delete_document(session: Session, document: KbDocument) -> tuple[KnowledgeBase, bool]:
    """Delete a document and its chunks (not while it is being indexed); the base, and whether an attempt may
    have written vectors the caller should remove. The base switches if a re-index waited only for it."""
    if document.state in lifecycle.WORKING:
        raise Conflict(f"Document '{document.name}' is being indexed ({document.state.value}); delete it once it "
                       "is done or failed.")
    base = lock(session, document.kb_id)
    ever_indexed = document.attempts > 0
    session.delete(document)
    session.flush()
    maybe_switch(session, base.id)
    return base, ever_indexed


def maybe_switch(session: Session, kb_id: str) -> bool:
    """Serve the next generation if every document is done in it. Call with the base's row locked."""
    base = session.get(KnowledgeBase, kb_id, populate_existing=True)
    if base is None or base.next_generation is None:
        return False
    missing = session.exec(select(func.count()).select_from(KbDocument).where(
        KbDocument.kb_id == kb_id,
        (col(KbDocument.state) != DocState.DONE) | (col(KbDocument.generation) != base.next_generation))).one()
    if missing:
        return False
    had_documents = session.exec(select(func.count()).select_from(KbDocument).where(
        KbDocument.kb_id == kb_id)).one()
    base.retired_generation = base.generation if had_documents else None
    base.retired_at = utcnow() if had_documents else None
    base.generation, base.embedding_model = base.next_generation, base.next_embedding_model or base.embedding_model
    base.chunking = base.next_chunking or base.chunking
    base.next_generation = base.next_embedding_model = base.next_chunking = None
    base.updated_at = utcnow()
    session.add(base)
    session.flush()
    return True


def retired(session: Session, before: datetime) -> list[tuple[str, int]]:
    """(base id, generation) of collections retired before ``before``: no query can still be reading them."""
    return [(kb_id, generation) for kb_id, generation in session.exec(
        select(KnowledgeBase.id, KnowledgeBase.retired_generation).where(
            col(KnowledgeBase.retired_generation).is_not(None), col(KnowledgeBase.retired_at) < before)).all()]


def base_ids(session: Session) -> set[str]:
    return set(session.exec(select(KnowledgeBase.id)).all())


def forget_retired(session: Session, kb_id: str, generation: int) -> None:
    base = session.get(KnowledgeBase, kb_id)
    if base is not None and base.retired_generation == generation:
        base.retired_generation = base.retired_at = None
        session.add(base)


def progress(session: Session, base: KnowledgeBase) -> dict[str, Any] | None:
    """How far the next generation is: its documents done of all; None when none is building."""
    if base.next_generation is None:
        return None
    total, done, failed = session.exec(select(func.count(), func.count().filter(
        (col(KbDocument.state) == DocState.DONE) & (col(KbDocument.generation) == base.next_generation)),
        func.count().filter(col(KbDocument.state) == DocState.ERROR))
        .select_from(KbDocument).where(KbDocument.kb_id == base.id)).one()
    return {"generation": base.next_generation, "embedding_model": base.next_embedding_model,
            "chunking": base.next_chunking, "documents": int(total), "done": int(done), "failed": int(failed)}


def _newest(base: KnowledgeBase) -> int:
    return max(base.generation, base.retired_generation or 0)


def lock(session: Session, kb_id: str) -> KnowledgeBase:
    """The base's row, locked until the transaction ends: document completions and the switch take turns (on
    SQLite, the writer lock is taken first, so what is read here is what the writes after it see)."""
    lock_sqlite_for_writing(session)
    base = session.exec(select(KnowledgeBase).where(KnowledgeBase.id == kb_id).with_for_update()
                        .execution_options(populate_existing=True)).first()
    if base is None:
        raise lifecycle.Superseded(f"knowledge base {kb_id} was deleted")
    return base
