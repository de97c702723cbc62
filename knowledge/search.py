"""A knowledge base's index and the one way it is queried.

Each base's vectors live in one Milvus collection per index generation (``kb_<id>_g<n>``), rows keyed by chunk
id. :func:`store_parameters` is what a workflow's retriever or writer that names the base gets as its
``MilvusDocumentStore``; :func:`retrieve` runs the same Haystack components (the base's embedding model, then
``MilvusEmbeddingRetriever`` on those store parameters), so the retrieval test and a published app's retriever
return the same chunks for the same query.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from knowledge.models import KnowledgeBase
from knowledge.settings import Retrieval
from stackyard.errors import StackyardError
from stackyard.settings import Settings

MAX_QUERY_CHARS = 2000
# A workflow names a knowledge base where a component takes a document store:
#   document_store: {type: knowledge_base, init_parameters: {name: handbook}}
KNOWLEDGE_BASE_STORE = "knowledge_base"


class BadQuery(StackyardError):
    status = 422


def collection_name(base: KnowledgeBase, generation: int | None = None) -> str:
    return f"kb_{base.id}_g{generation or base.generation}"


def store_parameters(base: KnowledgeBase, generation: int | None = None) -> dict[str, Any]:
    """``MilvusDocumentStore`` init parameters for the base's serving collection (the URI comes from settings)."""
    return {"collection_name": collection_name(base, generation), "consistency_level": "Strong",
            # cosine, so scores read -1..1 (higher is closer) and a score threshold means the same in every base;
            # IVF_FLAT: milvus-lite's default index searched 50,000 chunks in p95 ~356 ms here, this one in ~138 ms
            # (bench/knowledge.py). Rows not yet sealed into the index are searched exactly.
            "index_params": {"metric_type": "COSINE", "index_type": "IVF_FLAT", "params": {"nlist": 256}},
            "search_params": {"metric_type": "COSINE", "params": {"nprobe": 16}}}


_stores: dict[tuple[str, str], Any] = {}
_stores_lock = threading.Lock()


def document_store(base: KnowledgeBase, settings: Settings, generation: int | None = None) -> Any:
    """The base's ``MilvusDocumentStore``, kept per process and collection: opening one costs ~160 ms at 50,000
    chunks, more than the search."""
    from nodes.stores import ensure_vector_store, milvus_document_store

    key = (ensure_vector_store(settings), collection_name(base, generation))
    with _stores_lock:
        if key not in _stores:
            _stores[key] = milvus_document_store(settings=settings, **store_parameters(base, generation))
        return _stores[key]


def drop_index(collection: str, settings: Settings) -> None:
    """Drop a base's collection, and the store this process kept for it."""
    from nodes.stores import drop_collection, ensure_vector_store

    with _stores_lock:
        _stores.pop((ensure_vector_store(settings), collection), None)
    drop_collection(collection, settings)


_embedders: dict[tuple[str, str], Any] = {}
_embedders_lock = threading.Lock()


def _warm(kind: str, model: str, settings: Settings) -> Any:
    """A warm sentence-transformers ``kind`` embedder (Text or Document) for ``model``, kept per process: loading
    one costs seconds. Both embed a chunk's text the same way, so a query meets the chunks in one space."""
    with _embedders_lock:
        if (kind, model) not in _embedders:
            from haystack_integrations.components.embedders import sentence_transformers

            cls = getattr(sentence_transformers, f"SentenceTransformers{kind}Embedder")
            quiet = {"progress_bar": False} if kind == "Document" else {}
            embedder = cls(model=settings.local_model_path(model) or model, **quiet)
            embedder.warm_up()
            _embedders[(kind, model)] = embedder
        return _embedders[(kind, model)]


def text_embedder(model: str, settings: Settings) -> Any:
    return _warm("Text", model, settings)


def document_embedder(model: str, settings: Settings) -> Any:
    return _warm("Document", model, settings)


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    score: float
    text: str
    meta: dict[str, Any]


def retrieve(base: KnowledgeBase, query: str, settings: Settings, *, top_k: int | None = None,
             score_threshold: float | None = None) -> list[Hit]:
    """The base's chunks nearest ``query``, best first, with their cosine similarity; none before anything of
    the base was embedded."""
    from milvus_haystack import MilvusEmbeddingRetriever

    if not query.strip() or len(query) > MAX_QUERY_CHARS:
        raise BadQuery(f"query must be 1-{MAX_QUERY_CHARS} characters.", field="query")
    defaults = Retrieval(**base.retrieval)
    top_k = top_k or defaults.top_k
    threshold = defaults.score_threshold if score_threshold is None else score_threshold
    from nodes.stores import has_collection

    if not has_collection(collection_name(base), settings):   # nothing embedded yet (or every document failed)
        return []
    embedding = text_embedder(base.embedding_model, settings).run(text=query)["embedding"]
    retriever = MilvusEmbeddingRetriever(document_store=document_store(base, settings), top_k=top_k)
    documents = retriever.run(query_embedding=embedding)["documents"]
    return [Hit(document.id, float(document.score or 0.0), document.content or "", dict(document.meta))
            for document in documents if threshold is None or (document.score or 0.0) >= threshold]


def named_bases(spec: dict[str, Any]) -> set[str]:
    """The knowledge bases a stored workflow spec's components name as their document store."""
    found = set()
    for component in (spec.get("components") or {}).values():
        for value in ((component or {}).get("init_parameters") or {}).values():
            if isinstance(value, dict) and value.get("type") == KNOWLEDGE_BASE_STORE:
                name = (value.get("init_parameters") or {}).get("name")
                if isinstance(name, str):
                    found.add(name)
    return found


def reindex_chunk(base: KnowledgeBase, chunk: Any, settings: Settings) -> None:
    """Bring one chunk's vector in line with its row: embedded again if enabled (its text may have changed),
    removed from the index if switched off."""
    from haystack import Document
    from haystack.document_stores.types import DuplicatePolicy

    store = document_store(base, settings)
    if not chunk.enabled:
        store.delete_documents([chunk.id])
        return
    embedding = text_embedder(base.embedding_model, settings).run(text=chunk.text)["embedding"]
    store.write_documents([Document(id=chunk.id, content=chunk.text, embedding=embedding,
                                    meta={**chunk.meta, "kb_document_id": chunk.document_id,
                                          "position": chunk.position})], policy=DuplicatePolicy.OVERWRITE)
