"""Parent–child chunking: which parent each chunk answers with, as Haystack's ``AutoMergingRetriever`` reads it.

Chunks are embedded and matched as in any base; their parents live in a second collection of the same generation
(``kb_<id>_g<n>_parents``, text and ids only), from which the auto-merging retriever fetches a parent by id. Its
contract: every matched chunk names a parent (``__parent_id``, with ``__level`` and ``__block_size``), and a parent
lists its chunks (``__children_ids``); it returns the parent when more than its threshold of them matched.

A chunk whose text was edited or added by hand is its own parent: the passage it was cut from does not hold its
text, and an answer must read the edit. So is a document no longer than one chunk. A parent some of whose chunks
are switched off or edited reads as its remaining chunks (``parent_documents``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from knowledge.models import ADDED_BY_HAND, TEXT_EDITED, KbChunk

PARENT = "__parent_id"          # a split chunk's meta in SQL: the id of the parent it was cut from
CHILDREN = "__children_ids"
LEVEL = "__level"
BLOCK_SIZE = "__block_size"
# Parents are fetched by id, never searched; Milvus still needs a vector in every row.
PARENT_VECTOR = [1.0, 1.0]
MIN_MERGE = 1e-6                # Haystack's threshold is above 0; a base's 0 means "any matched chunk"


def parent_id(document_id: str, position: int, text: str) -> str:
    return "p" + hashlib.sha256(f"{document_id}\x00parent\x00{position}\x00{text}".encode()).hexdigest()[:31]


def parent_of(chunk: KbChunk) -> str:
    """The id of the parent ``chunk`` answers with: the one it was cut from, or itself (see the module)."""
    if chunk.meta.get(TEXT_EDITED) or chunk.meta.get(ADDED_BY_HAND) or not chunk.meta.get(PARENT):
        return chunk.id
    return chunk.meta[PARENT]


def chunk_meta(chunk: KbChunk, length: int) -> dict[str, Any]:
    """What an indexed chunk carries for the auto-merging retriever."""
    return {PARENT: parent_of(chunk), LEVEL: 2, BLOCK_SIZE: length}


def parent_documents(document_id: str, chunks: list[KbChunk], texts: dict[str, str], *, parent_length: int,
                     file_name: str | None = None) -> list[Any]:
    """The parents the switched-on ``chunks`` of one document (all its chunks are given) answer with, each
    listing those chunks. A parent reads as it was cut (``texts``, by id) while every chunk cut from it is on and
    unedited; otherwise as its chunks that are, in order, so a switched-off or edited chunk's old words are not
    served through it (chunks cut with an overlap then repeat those words). A chunk that is its own parent reads
    as itself."""
    from haystack import Document

    cut: dict[str, int] = {}
    children: dict[str, list[KbChunk]] = {}
    for chunk in sorted(chunks, key=lambda c: c.position):
        if chunk.meta.get(PARENT):
            cut[chunk.meta[PARENT]] = cut.get(chunk.meta[PARENT], 0) + 1
        if chunk.enabled:
            children.setdefault(parent_of(chunk), []).append(chunk)
    made = []
    for pid, kids in children.items():
        own = len(kids) == 1 and kids[0].id == pid
        whole = pid in texts and len(kids) == cut.get(pid)
        content = kids[0].text if own else texts[pid] if whole else " ".join(k.text.strip() for k in kids)
        # its position: its first chunk's, so hits read in document order either way
        meta = {CHILDREN: [kid.id for kid in kids], LEVEL: 1, BLOCK_SIZE: parent_length,
                "kb_document_id": document_id, "position": kids[0].position}
        if file_name:
            meta["file_name"] = file_name
        made.append(Document(id=pid, content=content, meta=meta, embedding=PARENT_VECTOR))
    return made


def merge_threshold(share: float) -> float:
    """A base's merge threshold as the auto-merging retriever takes it."""
    return max(share, MIN_MERGE)
