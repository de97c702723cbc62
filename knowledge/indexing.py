"""Indexing one document on a worker: read → split → chunks into SQL → embed → vectors into the base's collection,
moving the document through its states (``knowledge.lifecycle``) with its progress as it goes.

Chunk ids are a hash of the document, position and text, so indexing a document again writes the same rows over
themselves (no duplicates) and removes only the chunks a new split no longer makes. A chunk edited by hand under
the same chunking keeps its position through a re-split; one edited under another chunking follows the split as a
chunk of its own, like chunks added by hand (``_store_chunks``). A switched-off document keeps its chunks in SQL
and none in the index.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select

from knowledge import generations, lifecycle, parents
from knowledge.documents import read, split, split_in_parents
from knowledge.lifecycle import Superseded
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
from knowledge.search import document_embedder, document_store, write_parents
from knowledge.settings import Chunking
from stackyard.redact import redact
from stackyard.settings import get_settings
from store.db import session_scope

log = logging.getLogger("stackyard.knowledge")
EMBED_BATCH = 64
META_KEYS = ("file_name", "page_number")   # what a chunk keeps of its converter's metadata (scalars Milvus stores)


def chunk_id(document_id: str, position: int, text: str) -> str:
    return hashlib.sha256(f"{document_id}\x00{position}\x00{text}".encode()).hexdigest()[:32]


class Heartbeat(threading.Thread):
    """Renews the attempt's heartbeat every ``every`` seconds while it reads, splits or embeds: a long parse or a
    slow batch on a busy machine is not mistaken for a dead worker."""

    def __init__(self, document: KbDocument, every: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-document-{document.id}")
        self.document_id, self.attempt, self.every = document.id, document.attempts, every
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                with session_scope() as session:
                    if not lifecycle.beat(session, self.document_id, self.attempt):
                        return
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease tolerates several
                log.exception("heartbeat failed for document %s", self.document_id)


def index_document(document_id: str, *, beat_seconds: float = 3.0) -> DocState | None:
    """Index a queued document into its base's target generation; its final state (queued: send it again, a
    re-index began meanwhile), or None when it was not queued (another worker has it).
    ``beat_seconds``: how often the attempt renews its heartbeat (a fifth of the worker lease)."""
    settings = get_settings()
    with session_scope() as session:
        document = lifecycle.claim(session, document_id)
        if document is None:
            return None
        base = session.get(KnowledgeBase, document.kb_id)
        where = generations.target(base)
    heartbeat = Heartbeat(document, beat_seconds)
    heartbeat.start()
    try:
        url = document.path if document.source == "url" else None
        pieces = read(document.name, text=document.text, url=url,
                      path=Path(settings.resolved_files_root, document.path) if document.path and not url else None)
        with session_scope() as session:
            document = lifecycle.splitting(session, document)
        chunks, texts = _cut(document.id, pieces, where.chunking)
        rows = _store_chunks(document, chunks, where.chunking)
        with session_scope() as session:
            document = lifecycle.embedding(session, document, 0.2)
        _embed_and_write(base, where, document, rows, texts)
        with session_scope() as session:
            return generations.finish(session, document, where.generation, len(rows)).state
    except Superseded as exc:
        log.info("%s", exc)
        return None
    except Exception as exc:  # noqa: BLE001 - the document records why; the worker goes on
        error = redact(str(exc) if getattr(exc, "status", None) else f"{type(exc).__name__}: {exc}")
        log.warning("document %s (%s) failed to index: %s", document.id, document.name, error)
        with session_scope() as session:
            failed = lifecycle.fail(session, document, error)
        return failed.state if failed else None
    finally:
        heartbeat.done.set()


def _cut(document_id: str, pieces: list[Any], chunking: Chunking) -> tuple[list[tuple[Any, str | None]], dict[str, str]]:
    """The document's chunks, each with the id of its parent under parent–child chunking, and the parents' texts
    by id."""
    if not chunking.parent_length:
        return [(chunk, None) for chunk in split(pieces, chunking)], {}
    chunks, texts = split_in_parents(pieces, chunking)
    ids = [parents.parent_id(document_id, position, text) for position, text in enumerate(texts)]
    return [(chunk, None if at is None else ids[at]) for chunk, at in chunks], dict(zip(ids, texts, strict=True))


def _store_chunks(document: KbDocument, chunks: list[tuple[Any, str | None]], chunking: Chunking) -> list[KbChunk]:
    """The document's chunks in SQL: the split's, except where a chunk edited by hand under the same chunking
    holds the position; chunks added by hand follow the split's last one. An edit made under another chunking
    cannot hold a position of this cut: its text follows the split as a chunk of its own (the split's chunk
    stays too), and a chunk only switched off under it is let go."""
    cut = chunking_key(chunking.model_dump())
    with session_scope() as session:
        kept = session.exec(select(KbChunk).where(KbChunk.document_id == document.id, col(KbChunk.edited))
                            .order_by(col(KbChunk.position))).all()
        edited, added = {}, []
        for chunk in kept:
            if chunk.meta.get(ADDED_BY_HAND):
                added.append(chunk)
            elif chunk.meta.get(EDITED_UNDER, cut) == cut:
                edited[chunk.position] = chunk
            elif chunk.meta.get(TEXT_EDITED):     # a chunk of its own now, under an id the new cut cannot make
                added.append(KbChunk(kb_id=chunk.kb_id, document_id=chunk.document_id, position=chunk.position,
                                     text=chunk.text, enabled=chunk.enabled, edited=True, meta={
                                         **{k: v for k, v in chunk.meta.items() if k != EDITED_UNDER},
                                         ADDED_BY_HAND: True}))
                session.delete(chunk)
            else:
                session.delete(chunk)
        session.flush()
        session.execute(delete(KbChunk).where(col(KbChunk.document_id) == document.id, ~col(KbChunk.edited)))
        rows = []
        for position, (chunk, parent) in enumerate(chunks):
            if position in edited:    # it answers with the parent this cut gives its position
                held = edited[position]
                held.meta = {**{k: v for k, v in held.meta.items() if k != parents.PARENT},
                             **({parents.PARENT: parent} if parent else {})}
                rows.append(held)
                continue
            meta = {key: chunk.meta[key] for key in META_KEYS if isinstance(chunk.meta.get(key), str | int)}
            if parent:
                meta[parents.PARENT] = parent
            row = KbChunk(id=chunk_id(document.id, position, chunk.content), kb_id=document.kb_id,
                          document_id=document.id, position=position, text=chunk.content, meta=meta)
            session.add(row)
            rows.append(row)
        rows += [c for position, c in sorted(edited.items()) if position >= len(chunks)]
        for chunk in added:
            chunk.position = max(len(chunks), len(rows) and rows[-1].position + 1)
            session.add(chunk)
            rows.append(chunk)
        session.flush()
        session.expunge_all()
    return rows


def _embed_and_write(base: KnowledgeBase, where: generations.Target, document: KbDocument,
                     rows: list[KbChunk], texts: dict[str, str]) -> None:
    from haystack import Document
    from haystack.document_stores.types import DuplicatePolicy

    settings = get_settings()
    embedder = document_embedder(where.embedding_model, settings)
    store = document_store(base, settings, where.generation)
    # a switched-off document keeps its chunks in SQL and no vectors: the sweeps below remove any it had
    enabled = [row for row in rows if row.enabled] if document.enabled else []
    hierarchy = where.chunking.parent_length
    if hierarchy:     # parents first: a chunk found before its parent is written would fail the merge
        write_parents(base, where.generation, document.id, rows if document.enabled else [], texts, where.chunking,
                      settings)
    for start in range(0, len(enabled), EMBED_BATCH):
        batch = [Document(id=row.id, content=row.text, meta={
                     **row.meta, "kb_document_id": document.id, "position": row.position,
                     **(parents.chunk_meta(row, where.chunking.length) if hierarchy else {})})
                 for row in enabled[start:start + EMBED_BATCH]]
        store.write_documents(embedder.run(documents=batch)["documents"], policy=DuplicatePolicy.OVERWRITE)
        with session_scope() as session:
            progress = 0.2 + 0.8 * min(start + EMBED_BATCH, len(enabled)) / max(len(enabled), 1)
            document = lifecycle.embedding(session, document, round(min(progress, 0.99), 3))
    keep = {row.id for row in enabled}
    stale = [d.id for d in store.filter_documents({"field": "meta.kb_document_id", "operator": "==",
                                                   "value": document.id}) if d.id not in keep]
    if stale:
        store.delete_documents(stale)
