"""Every move of a knowledge-base document's indexing state, and the only writer of ``KbDocument.state``. The
caller commits (and sends a queued document only after that).

queued → parsing → splitting → embedding → done, or → error from any working state. A worker claims a queued
document (parsing, ``attempts`` + 1, a fresh heartbeat); done and error documents go back to queued when they are
retried or their knowledge base is re-indexed, and an embedding one when its attempt finds that a re-index began
while it worked (``knowledge.generations``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlmodel import Session, col, select

from knowledge.models import DocState, KbChunk, KbDocument, KnowledgeBase
from store.clock import utcnow
from store.transitions import Sql, compare_and_set

WORKING = frozenset({DocState.PARSING, DocState.SPLITTING, DocState.EMBEDDING})
TERMINAL = frozenset({DocState.DONE, DocState.ERROR})
ALLOWED: dict[DocState, frozenset[DocState]] = {
    DocState.QUEUED: frozenset({DocState.DONE, DocState.ERROR, *WORKING}),   # retried, re-indexed, or taken back
    DocState.PARSING: frozenset({DocState.QUEUED}),
    DocState.SPLITTING: frozenset({DocState.PARSING}),
    DocState.EMBEDDING: frozenset({DocState.SPLITTING, DocState.EMBEDDING}),   # embedding → embedding: progress
    DocState.DONE: frozenset({DocState.EMBEDDING}),
    DocState.ERROR: frozenset({DocState.QUEUED, *WORKING}),
}
_SAME_ATTEMPT = Sql(col(KbDocument.attempts) == bindparam("attempt"))
_NEXT_ATTEMPT = Sql(col(KbDocument.attempts) + 1)


def transition(session: Session, document_id: str, to: DocState, *, attempt: int | None = None,
               **fields: Any) -> KbDocument | None:
    """Move a document to ``to`` if its state allows it (and, given ``attempt``, it is still that attempt's)."""
    where, params = (_SAME_ATTEMPT, {"attempt": attempt}) if attempt is not None else (None, None)
    return compare_and_set(session, KbDocument, document_id, to, ALLOWED[to], terminal=to in TERMINAL, where=where,
                           params=params, commit=False, **fields)


def claim(session: Session, document_id: str) -> KbDocument | None:
    """Start indexing a queued document: parsing, its next attempt, a fresh heartbeat; None if not queued."""
    return compare_and_set(session, KbDocument, document_id, DocState.PARSING, {DocState.QUEUED}, attempts=_NEXT_ATTEMPT,
                           heartbeat_at=utcnow(), error=None, progress=0.0, finished_at=None, commit=False)


def _step(session: Session, document: KbDocument, to: DocState, **fields: Any) -> KbDocument:
    """Move the attempt that holds ``document`` on; raises :class:`Superseded` if it was taken away meanwhile."""
    moved = transition(session, document.id, to, attempt=document.attempts, heartbeat_at=utcnow(), **fields)
    if moved is None:
        raise Superseded(f"document {document.id} left {document.state.value} while attempt {document.attempts} "
                         "indexed it (deleted, retried or re-indexed)")
    return moved


def beat(session: Session, document_id: str, attempt: int) -> bool:
    """Renew the heartbeat of the attempt indexing a document; False once that attempt no longer holds it."""
    renewed = session.execute(update(KbDocument).where(
        col(KbDocument.id) == document_id, col(KbDocument.attempts) == attempt, col(KbDocument.state).in_(WORKING))
        .values(heartbeat_at=utcnow()))
    return renewed.rowcount == 1


def splitting(session: Session, document: KbDocument) -> KbDocument:
    return _step(session, document, DocState.SPLITTING, progress=0.1)


def embedding(session: Session, document: KbDocument, progress: float) -> KbDocument:
    """Embedding, ``progress`` (0..1) of the way through the whole document; renews the attempt's heartbeat."""
    return _step(session, document, DocState.EMBEDDING, progress=progress)


def done(session: Session, document: KbDocument, chunk_count: int, generation: int) -> KbDocument:
    """Indexed: its ``chunk_count`` chunks are in index ``generation``."""
    return _step(session, document, DocState.DONE, progress=1.0, chunk_count=chunk_count, generation=generation)


def step_back(session: Session, document: KbDocument) -> KbDocument:
    """Queued again by the attempt that holds it (its work went to a generation a re-index has replaced)."""
    return _step(session, document, DocState.QUEUED, progress=0.0)


def fail(session: Session, document: KbDocument, error: str) -> KbDocument | None:
    return transition(session, document.id, DocState.ERROR, attempt=document.attempts, error=error[:2000])


def take_back_stale(session: Session, *, stale_before: datetime, max_attempts: int, gave_up: str) -> list[str]:
    """Documents whose worker stopped beating before ``stale_before`` (it died): queued again, or failed with
    ``gave_up`` once they have had ``max_attempts``. Returns the ids to send again."""
    stale = session.exec(select(KbDocument.id, KbDocument.attempts).where(
        col(KbDocument.state).in_(WORKING), col(KbDocument.heartbeat_at) < stale_before)).all()
    again = []
    for document_id, attempts in stale:
        same = {"attempt": attempts}
        if attempts >= max_attempts:
            compare_and_set(session, KbDocument, document_id, DocState.ERROR, WORKING, terminal=True,
                            where=_SAME_ATTEMPT, params=same, error=gave_up, commit=False)
        elif compare_and_set(session, KbDocument, document_id, DocState.QUEUED, WORKING, where=_SAME_ATTEMPT,
                             params=same, progress=0.0, heartbeat_at=utcnow(), commit=False):
            again.append(document_id)
    return again


def counts(session: Session, kb_id: str) -> dict[str, int]:
    """A knowledge base's documents per state, and its chunks."""
    states = dict(session.exec(select(KbDocument.state, func.count()).where(KbDocument.kb_id == kb_id)
                               .group_by(KbDocument.state)).all())
    chunks = session.exec(select(func.count()).select_from(KbChunk).where(KbChunk.kb_id == kb_id)).one()
    return {**{state.value: int(states.get(state, 0)) for state in DocState}, "chunks": int(chunks)}


def status(counted: dict[str, int], *, reindexing: bool = False) -> str:
    """``reindexing`` (a next generation is building; the current one serves), ``empty``, ``indexing`` (something
    queued or in work), ``error`` (something failed) or ``ready``."""
    if reindexing:
        return "reindexing"
    if any(counted[state.value] for state in (DocState.QUEUED, *WORKING)):
        return "indexing"
    if counted[DocState.ERROR.value]:
        return "error"
    return "ready" if counted[DocState.DONE.value] else "empty"


def notice(base: KnowledgeBase, counted: dict[str, int]) -> str | None:
    """What a retrieval over the base misses now: documents still indexing, or none indexed yet."""
    name, now = base.name, status(counted, reindexing=base.next_generation is not None)
    if now == "reindexing":
        return (f"Knowledge base '{name}' is re-indexing into generation {base.next_generation}; generation "
                f"{base.generation} answers until every document is in the new one.")
    if now == "empty" or not counted["chunks"]:
        return f"Knowledge base '{name}' has no indexed chunks yet: add documents, and wait until they are done."
    if now == "indexing":
        return f"Knowledge base '{name}' is still indexing documents: their chunks are not searched until done."
    if now == "error":
        return (f"Some documents of knowledge base '{name}' failed to index (see their errors): their chunks are not "
                "searched until they are retried.")
    return None


def unsent(session: Session, document_id: str, reason: str) -> KbDocument | None:
    """A queued document whose message the broker did not take: failed, so that ``retry`` can send it again."""
    return compare_and_set(session, KbDocument, document_id, DocState.ERROR, {DocState.QUEUED}, terminal=True,
                           error=reason[:2000], commit=False)


def requeue(session: Session, document_id: str) -> KbDocument | None:
    """Queue a done or failed document again (retry, re-index); None if it is queued or being indexed."""
    return compare_and_set(session, KbDocument, document_id, DocState.QUEUED, {DocState.DONE, DocState.ERROR},
                           error=None, progress=0.0, finished_at=None, heartbeat_at=utcnow(), commit=False)


# When a queued document's message went out: the last move that sent it (requeue, take-back, step back), or its
# creation.
SENT_AT = func.coalesce(col(KbDocument.heartbeat_at), col(KbDocument.created_at))


def resend_lost(session: Session, *, lost_before: datetime, now: datetime | None = None) -> list[str]:
    """Queued documents whose message went out before ``lost_before`` although the broker's queue was seen empty
    then (or restarted since): the message is lost (a Redis restart without persistence, a flush). Each is stamped
    as sent now, so concurrent reapers send it once; the caller sends the ids returned."""
    table = KbDocument.__table__
    due = (col(KbDocument.state) == DocState.QUEUED, SENT_AT < lost_before)
    rows = session.connection().execute(update(table).where(*due).values(heartbeat_at=now or utcnow())
                                        .returning(table.c.id)).all()
    return [row[0] for row in rows]


class Superseded(Exception):
    """The attempt no longer holds its document: whoever took it finishes it."""
