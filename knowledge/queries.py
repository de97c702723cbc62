"""Retrieval tests: a query against a knowledge base through the one retrieval path (``knowledge.search``),
recorded with its hits so it can be run again (to compare after an edit or a re-index) and saved as a test case
for evaluations: the sources a right answer must find, as document ids and a gold snippet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from knowledge import bases, lifecycle, search
from knowledge.models import KbQuery, KnowledgeBase
from knowledge.settings import asked as settings_for
from stackyard.errors import NotFound, StackyardError
from stackyard.settings import Settings

SNIPPET_CHARS = 300
HISTORY = 100          # recorded queries a base keeps; older ones go unless saved as test cases


class BadTestCase(StackyardError):
    status = 422


@dataclass
class Answer:
    query: str
    mode: str
    scale: str
    took_ms: float
    notice: str | None
    hits: list[dict[str, Any]] = field(default_factory=list)
    query_id: str | None = None
    generation: int = 0


def ask(session: Session, base: KnowledgeBase, query: str, settings: Settings, *, mode: str | None = None,
        top_k: int | None = None, score_threshold: float | None = None, rank: bool | None = None,
        record: bool = True) -> Answer:
    """The chunks a workflow's retriever on ``base`` returns for ``query``, with their scores and document names;
    recorded (the caller commits) unless ``record`` is false."""
    asked = settings_for(base.retrieval, mode=mode, top_k=top_k, score_threshold=score_threshold, rank=rank)
    counted = lifecycle.counts(session, base.id)
    answer = Answer(query=query, mode=asked.mode, scale=asked.scale, took_ms=0.0,
                    notice=lifecycle.notice(base, counted), generation=base.generation)
    if counted["chunks"]:
        started = time.perf_counter()
        hits = search.retrieve(base, query, settings, mode=asked.mode, top_k=asked.top_k,
                               score_threshold=asked.score_threshold, rank=asked.ranker is not None)
        answer.took_ms = round((time.perf_counter() - started) * 1000, 1)
        names = bases.document_names(session, {h.meta.get("kb_document_id") for h in hits})
        answer.hits = [{"chunk_id": h.chunk_id, "document_id": h.meta.get("kb_document_id"),
                        "document": names.get(h.meta.get("kb_document_id")), "position": h.meta.get("position"),
                        "score": h.score, "dense": h.dense, "keyword": h.keyword, "text": h.text,
                        "chunks": list(h.chunks)} for h in hits]
    elif not query.strip() or len(query) > search.MAX_QUERY_CHARS:
        raise search.BadQuery(f"query must be 1-{search.MAX_QUERY_CHARS} characters.", field="query")
    if record:
        row = KbQuery(kb_id=base.id, query=query, mode=asked.mode, top_k=asked.top_k,
                      score_threshold=asked.score_threshold, generation=base.generation, took_ms=answer.took_ms,
                      hits=[{k: h[k] for k in ("chunk_id", "document_id", "document", "score", "chunks")}
                            for h in answer.hits])
        session.add(row)
        session.flush()
        answer.query_id = row.id
        _trim(session, base.id)
    return answer


def history(session: Session, base: KnowledgeBase, *, limit: int = 50) -> list[KbQuery]:
    return list(session.exec(select(KbQuery).where(KbQuery.kb_id == base.id)
                             .order_by(col(KbQuery.created_at).desc()).limit(limit)).all())


def kept_as_cases(session: Session, base: KnowledgeBase, query_ids: list[str] | None = None) -> list[KbQuery]:
    """The base's retrieval tests kept as test cases (those of ``query_ids`` only, when given), oldest first."""
    query = select(KbQuery).where(KbQuery.kb_id == base.id, col(KbQuery.expected).is_not(None))
    if query_ids:
        query = query.where(col(KbQuery.id).in_(query_ids))
    return list(session.exec(query.order_by(col(KbQuery.created_at))).all())


def recorded(session: Session, base: KnowledgeBase, query_id: str) -> KbQuery:
    row = session.get(KbQuery, query_id)
    if row is None or row.kb_id != base.id:
        raise NotFound(f"Knowledge base '{base.name}' has no recorded query '{query_id}'; list them with "
                       f"GET /api/v1/knowledge-bases/{base.name}/queries.")
    return row


def rerun(session: Session, base: KnowledgeBase, query_id: str, settings: Settings) -> tuple[Answer, dict[str, Any]]:
    """Ask a recorded query again with its settings; the new answer and what changed (chunks gained, lost)."""
    before = recorded(session, base, query_id)
    answer = ask(session, base, before.query, settings, mode=before.mode, top_k=before.top_k,
                 score_threshold=before.score_threshold)
    was, now = [h["chunk_id"] for h in before.hits], [h["chunk_id"] for h in answer.hits]
    return answer, {"same": was == now, "gained": [c for c in now if c not in was],
                    "lost": [c for c in was if c not in now], "generation_before": before.generation}


def save_case(session: Session, base: KnowledgeBase, query_id: str, chunk_ids: list[str] | None) -> KbQuery:
    """Keep a recorded query as a test case whose right sources are the hits ``chunk_ids`` (default: the first)."""
    row = recorded(session, base, query_id)
    if not row.hits:
        raise BadTestCase("This query found nothing: a test case needs at least one source that should be found; "
                          "edit the knowledge base or the query and ask again.", field="chunk_ids")
    wanted = chunk_ids or [row.hits[0]["chunk_id"]]
    unknown = [c for c in wanted if c not in {h["chunk_id"] for h in row.hits}]
    if unknown:
        raise BadTestCase(f"chunk_ids {unknown[:3]} are not among this query's hits; pick from its hits.",
                          field="chunk_ids")
    # a parent's snippet is the text of its chunks that matched: the parent itself is cut anew by a re-index
    matched = {h["chunk_id"]: h.get("chunks") or [h["chunk_id"]] for h in row.hits if h["chunk_id"] in wanted}
    texts = {c.id: c.text for c in bases.chunks_by_id(session, base, [c for ids in matched.values() for c in ids])}
    row.expected = [{"document_id": h["document_id"], "document": h["document"],
                     "snippet": " ".join(texts.get(c, "") for c in matched[h["chunk_id"]])[:SNIPPET_CHARS]}
                    for h in row.hits if h["chunk_id"] in matched]
    session.add(row)
    session.flush()
    return row


def _trim(session: Session, kb_id: str) -> None:
    old = session.exec(select(KbQuery).where(KbQuery.kb_id == kb_id, col(KbQuery.expected).is_(None))
                       .order_by(col(KbQuery.created_at).desc()).offset(HISTORY)).all()
    for row in old:
        session.delete(row)
