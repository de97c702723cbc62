"""SQL tables of knowledge bases: the base (its embedding model, chunking and retrieval defaults), its documents
(each with its indexing state, ``knowledge.lifecycle``) and their chunks.

A chunk's text lives here, not only in the vector store: the store holds vectors and chunk ids, so an edited or
hand-added chunk survives a re-index and the chunk browser reads SQL, not Milvus.
"""

from __future__ import annotations

import enum
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from store.clock import utcnow

ADDED_BY_HAND = "added_by_hand"   # a chunk's meta flag: written by hand, not made by a split
EDITED_UNDER = "edited_under"     # an edited chunk's meta: the chunking it was cut under (chunking_key)
TEXT_EDITED = "text_edited"       # an edited chunk's meta: its text was changed (not only switched off or on)


def chunking_key(chunking: dict[str, Any]) -> str:
    """The same text for the same chunking settings: a setting left unset (None) is left out, so settings stored
    before it existed read the same."""
    return json.dumps({key: value for key, value in chunking.items() if value is not None}, sort_keys=True)


def new_id() -> str:
    return uuid.uuid4().hex



class KnowledgeBase(SQLModel, table=True):
    __tablename__ = "knowledge_base"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(index=True, unique=True, min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    embedding_model: str = Field(max_length=500)
    chunking: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    retrieval: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    generation: int = 1          # the index generation queries are served from (its Milvus collection)
    # A re-index builds the next generation with these settings while ``generation`` keeps serving; when every
    # document is in it, one row update switches ``generation``, ``embedding_model`` and ``chunking`` together.
    next_generation: int | None = None
    next_embedding_model: str | None = Field(default=None, max_length=500)
    next_chunking: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    retired_generation: int | None = None   # served until the switch; dropped once no query can still be reading it
    retired_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DocState(str, enum.Enum):
    QUEUED = "queued"
    PARSING = "parsing"
    SPLITTING = "splitting"
    EMBEDDING = "embedding"
    DONE = "done"
    ERROR = "error"


class KbDocument(SQLModel, table=True):
    """One source of a knowledge base: pasted text (kept in ``text``), a file under the files root, or a URL
    fetched when it is indexed."""

    __tablename__ = "kb_document"
    __table_args__ = (UniqueConstraint("kb_id", "content_hash"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    kb_id: str = Field(foreign_key="knowledge_base.id", index=True, ondelete="CASCADE", max_length=32)
    name: str = Field(max_length=500)
    source: str = Field(max_length=10)            # "text", "file" or "url"
    path: str | None = Field(default=None, max_length=4096)   # a file: relative to the files root; a URL
    text: str | None = Field(default=None, sa_column=Column(Text))
    content_hash: str = Field(max_length=64)      # sha256 of the bytes: the same content twice is skipped
    size_bytes: int = 0
    state: DocState = Field(default=DocState.QUEUED, index=True)
    progress: float = 0.0                         # 0..1 within the whole indexing of this document
    error: str | None = None
    enabled: bool = True
    chunk_count: int = 0
    generation: int = 0                           # the index generation its chunks were last written into
    attempts: int = 0
    heartbeat_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class KbChunk(SQLModel, table=True):
    """A piece of a document as it is embedded. ``id`` is its id in the vector store too."""

    __tablename__ = "kb_chunk"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    kb_id: str = Field(foreign_key="knowledge_base.id", index=True, ondelete="CASCADE", max_length=32)
    document_id: str = Field(foreign_key="kb_document.id", index=True, ondelete="CASCADE", max_length=32)
    position: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    enabled: bool = True
    edited: bool = False                          # changed by hand: a re-split keeps it


class KbQuery(SQLModel, table=True):
    """A retrieval test as it was asked and answered; re-runnable, and savable as an evaluation test case."""

    __tablename__ = "kb_query"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    kb_id: str = Field(foreign_key="knowledge_base.id", index=True, ondelete="CASCADE", max_length=32)
    query: str = Field(sa_column=Column(Text, nullable=False))
    mode: str = Field(max_length=10)
    top_k: int
    score_threshold: float | None = None
    generation: int                                # the index generation that answered
    hits: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    took_ms: float = 0.0
    # Saved as a test case: the sources a right answer must find, as document ids and a gold snippet (labels that
    # survive re-chunking, which chunk ids do not).
    expected: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True),
                                                                                 nullable=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)
