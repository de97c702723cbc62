"""Shapes of knowledge bases, their documents, chunks and retrieval tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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
    generation: int = Field(description="The index generation queries are answered from")
    status: str = Field(description="empty, indexing, error, ready, or reindexing (the current generation answers "
                                    "while the next one builds)")
    counts: dict[str, int] = Field(description="Documents per state, and chunks")
    reindex: dict[str, Any] | None = Field(default=None, description="The generation being built: its settings and "
                                                                     "documents done of all")
    created_at: datetime
    updated_at: datetime


class ReindexRequest(BaseModel):
    embedding_model: Text | None = Field(default=None, max_length=500, description="Default: the base's")
    chunking: Chunking | None = Field(default=None, description="Default: the base's")


class TextSource(BaseModel):
    name: Text = Field(min_length=1, max_length=500)
    text: Text = Field(min_length=1)


class DocumentsAdd(BaseModel):
    texts: list[TextSource] = Field(default_factory=list, max_length=MAX_TEXTS, description="Pasted text")
    paths: list[Text] = Field(default_factory=list, max_length=MAX_TEXTS,
                              description="Files, folders or glob patterns under the files root")
    urls: list[Text] = Field(default_factory=list, max_length=MAX_TEXTS,
                             description="Web pages or files (http(s), public addresses or "
                                         "STACKYARD_FETCH_ALLOWED_HOSTS), fetched when indexed")


class DocumentChange(BaseModel):
    enabled: bool | None = Field(default=None, strict=True, description="Off: its chunks are not retrieved")
    text: Text | None = Field(default=None, min_length=1, description="Replace its content with this text, or")
    path: Text | None = Field(default=None, description="with this file under the files root, or")
    url: Text | None = Field(default=None, max_length=2000, description="with this URL")


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


class ChunkAdd(BaseModel):
    text: Text = Field(min_length=1, max_length=20_000)


class QueryRequest(BaseModel):
    query: Text = Field(min_length=1, max_length=2000)
    mode: Literal["dense", "keyword", "hybrid"] | None = Field(default=None, description="Default: the base's")
    top_k: int | None = Field(default=None, ge=1, le=100, strict=True)
    score_threshold: float | None = Field(default=None, strict=True, description="On the mode's scale")
    rank: bool | None = Field(default=None, strict=True, description="Re-order with the base's ranker (default: "
                                                                      "when it has one)")


class HitPublic(BaseModel):
    chunk_id: str
    document_id: str | None
    document: str | None
    position: int | None
    score: float = Field(description="On the mode's scale (the result's `scale`): higher is better")
    dense: float | None = Field(default=None, description="Hybrid: its dense score (cosine as (cos + 1) / 2)")
    keyword: float | None = Field(default=None, description="Hybrid: its BM25 score (none: no word of the query "
                                                            "is in it)")
    text: str
    chunks: list[str] = Field(default_factory=list, description="Parent–child: this hit is a parent, answering for "
                                                                "these of its chunks that matched")


class QueryResult(BaseModel):
    query: str
    query_id: str | None = Field(default=None, description="The recorded query: run it again or save it as a test "
                                                           "case")
    generation: int = Field(description="The index generation that answered")
    mode: str
    scale: str = Field(description="What the scores mean")
    hits: list[HitPublic]
    took_ms: float
    notice: str | None = Field(default=None, description="Why there may be fewer hits than asked for")


class RecordedQuery(BaseModel):
    id: str
    query: str
    mode: str
    top_k: int
    score_threshold: float | None
    generation: int
    hits: list[dict[str, Any]] = Field(description="chunk_id, document_id, document and score of each hit")
    took_ms: float
    expected: list[dict[str, Any]] | None = Field(description="Saved as a test case: the right sources (document id "
                                                              "and gold snippet)")
    created_at: datetime


class Rerun(BaseModel):
    answer: QueryResult
    same: bool = Field(description="The same chunks in the same order as when recorded")
    gained: list[str]
    lost: list[str]
    generation_before: int


class TestCaseSave(BaseModel):
    chunk_ids: list[Text] | None = Field(default=None, max_length=100,
                                         description="The hits a right answer must find (default: the first)")
