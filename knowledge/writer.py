"""The "Knowledge base writer" node: a workflow's documents become documents of a knowledge base, as the page and
``stackyard kb add`` add them — the same content skipped and reported, the base's own chunking and embedding
model, a state and progress for each, kept through a re-index.

Usage::

    writer = KnowledgeBaseWriter(knowledge_base="handbook")
    writer.run(documents=[Document(content="Thirty days of paid vacation.", meta={"file_path": "policy.txt"})])
    # {"added": ["9f…"], "skipped": []}: queued; the workers index it (watch it on /knowledge)

Each document is stored as pasted text under its file name (or URL). The run ends when they are queued, not
indexed. A process that can send work registers the sender with :func:`send_with` (``worker.enqueue`` does);
without one, the reaper sends queued documents it finds no message for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from haystack import Document, component

from knowledge import bases
from knowledge.documents import MAX_FILE_BYTES, MAX_FILES, BadDocument, text_source
from nodes.errors import NodeInputError
from stackyard.errors import NotFound
from store.db import session_scope

_send: Callable[[list[str]], None] | None = None


def send_with(sender: Callable[[list[str]], None]) -> None:
    """Have written documents sent for indexing by ``sender`` (their ids, after they are committed)."""
    global _send
    _send = sender


def _name(document: Document, number: int) -> str:
    meta = document.meta or {}
    for key in ("file_name", "file_path", "url"):
        if isinstance(meta.get(key), str) and meta[key].strip():
            return meta[key].strip()[:500]
    return f"document {number}"


@component
class KnowledgeBaseWriter:
    """Adds documents (from loaders, a fetcher, any step) to the knowledge base named ``knowledge_base``."""

    def __init__(self, *, knowledge_base: str = "") -> None:
        self.knowledge_base = knowledge_base      # checked when it runs: a node just dropped names none yet

    @component.output_types(added=list[str], skipped=list[dict[str, Any]])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """Queue ``documents`` for indexing into the base; ``added``: their ids, ``skipped``: those not added
        (empty, or the same content already in the base) with the reason."""
        base_name = self.knowledge_base.strip() if isinstance(self.knowledge_base, str) else ""
        if not 1 <= len(base_name) <= 100:
            raise NodeInputError("knowledge_base: name the knowledge base to add documents to (1-100 characters; "
                                 "see /knowledge).", field="knowledge_base")
        if len(documents) > MAX_FILES:
            raise NodeInputError(f"{len(documents)} documents in one run; a knowledge base takes at most {MAX_FILES} "
                                 "at a time. Run the workflow over fewer files.", field="documents")
        sources, skipped = [], []
        for number, document in enumerate(documents, start=1):
            name, text = _name(document, number), document.content or ""
            if len(text.encode("utf-8")) > MAX_FILE_BYTES:
                raise NodeInputError(f"'{name}' holds more than {MAX_FILE_BYTES:,} bytes of text; a document may be "
                                     "at most that. Split it before this node.", field="documents")
            try:
                sources.append(text_source(name, text, field="documents"))
            except BadDocument as exc:
                skipped.append({"name": name, "document_id": None, "reason": str(exc)})
        ids: list[str] = []
        try:
            with session_scope() as session:
                base = bases.get(session, base_name)
                if sources:
                    added = bases.add_documents(session, base, sources)
                    ids = [document.id for document in added.added]
                    skipped += added.skipped
        except NotFound:
            raise NodeInputError(f"No knowledge base '{base_name}': create it on /knowledge, or name "
                                 "another in this node's knowledge_base.", field="knowledge_base") from None
        if ids and _send is not None:
            _send(ids)
        return {"added": ids, "skipped": skipped}
