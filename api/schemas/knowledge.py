"""Shapes of knowledge bases, their documents, chunks and retrieval tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from knowledge.models import DocState
from knowledge.settings import Chunking, Retrieval
from workflows.bounds import Text

MAX_TEXTS = 100


class KnowledgeBaseCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=100, description="How workflows refer to it")
    description: Text = Field(default="", max_length=2000)
    embedding_model: Text | None = Field(default=None, max_length=500,
                                         description="Default: the bundled sentence-transformers/all-MiniLM-L6-v2")
    chunking: Chunking = Field(default_factory=Chunking)
    retrieval: Retrieval = Field(default_factory=Retrieval)


class KnowledgeBasePublic(BaseModel):
    id: str
    name: str
    description: str
    embedding_model: str
    chunking: Chunking
    retrieval: Retrieval
    generation: int
    status: str = Field(description="empty, indexing, error or ready")
    counts: dict[str, int] = Field(description="Documents per state, and chunks")
    created_at: datetime
    updated_at: datetime


class TextSource(BaseModel):
    name: Text = Field(min_length=1, max_length=500)
    text: Text = Field(min_length=1)


class DocumentsAdd(BaseModel):
    texts: list[TextSource] = Field(default_factory=list, max_length=MAX_TEXTS, description="Pasted text")
    paths: list[Text] = Field(default_factory=list, max_length=MAX_TEXTS,
                              description="Files, folders or glob patterns under the files root")


class DocumentPublic(BaseModel):
    id: str
    name: str
    source: str
    path: str | None
    size_bytes: int
    state: DocState
    progress: float
    error: str | None
    enabled: bool
    chunk_count: int
    attempts: int
    created_at: datetime
    finished_at: datetime | None


class DocumentsAdded(BaseModel):
    added: list[DocumentPublic]
    skipped: list[dict[str, Any]] = Field(description="Same content as a document the base has: not added again")


class PreviewRequest(BaseModel):
    text: Text | None = Field(default=None, description="Text to split, or")
    path: Text | None = Field(default=None, description="a file under the files root")
    chunking: Chunking | None = Field(default=None, description="Default: the knowledge base's")


class ChunkPublic(BaseModel):
    id: str
    document_id: str
    position: int
    text: str
    length: int
    meta: dict[str, Any]
    enabled: bool
    edited: bool


class ChunkPage(BaseModel):
    total: int
    chunks: list[ChunkPublic]


class ChunkEdit(BaseModel):
    text: Text | None = Field(default=None, min_length=1, max_length=20_000)
    enabled: bool | None = Field(default=None, strict=True)


class QueryRequest(BaseModel):
    query: Text = Field(min_length=1, max_length=2000)
    top_k: int | None = Field(default=None, ge=1, le=100, strict=True)
    score_threshold: float | None = Field(default=None, ge=-1, le=1, strict=True)


class HitPublic(BaseModel):
    chunk_id: str
    document_id: str | None
    document: str | None
    position: int | None
    score: float = Field(description="Cosine similarity, -1..1: higher is closer")
    text: str


class QueryResult(BaseModel):
    query: str
    hits: list[HitPublic]
    took_ms: float
    notice: str | None = Field(default=None, description="Why there may be fewer hits than asked for")
