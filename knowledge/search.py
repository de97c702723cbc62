"""A knowledge base's index and the one way it is queried.

Each base's vectors live in one Milvus collection per index generation (``kb_<id>_g<n>``), rows keyed by chunk
id. :func:`store_parameters` is what a workflow's retriever or writer that names the base gets as its
``MilvusDocumentStore``; :func:`retrieve` runs the same Haystack components (the base's embedding model, then
the node's Milvus retriever for the mode on those store parameters), so the retrieval test and a published app's
retriever return the same chunks for the same query.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from knowledge import parents
from knowledge.models import KnowledgeBase
from knowledge.settings import Chunking
from knowledge.settings import asked as settings_for
from stackyard.errors import StackyardError
from stackyard.settings import Settings

MAX_QUERY_CHARS = 2000
# A workflow names a knowledge base where a component takes a document store:
#   document_store: {type: knowledge_base, init_parameters: {name: handbook}}
KNOWLEDGE_BASE_STORE = "knowledge_base"


class BadQuery(StackyardError):
    status = 422


class NeedsReindex(StackyardError):
    status = 409


COLLECTION = re.compile(r"kb_([0-9a-f]{32})_g(\d+)(?:_parents)?")
CHUNKS, PARENTS = "", "_parents"      # a generation's collections: its chunks; under parent–child, their parents


def collection_name(base: KnowledgeBase, generation: int | None = None, part: str = CHUNKS) -> str:
    return f"kb_{base.id}_g{generation or base.generation}{part}"


SPARSE_FIELD = "sparse"
TEXT_FIELD = "text"
BM25_FUNCTION = {"type": "milvus_haystack.function.BM25BuiltInFunction",
                 "init_parameters": {"function_name": "bm25", "input_field_names": TEXT_FIELD,
                                     "output_field_names": SPARSE_FIELD, "analyzer_params": None,
                                     "enable_match": False}}


def store_parameters(base: KnowledgeBase, generation: int | None = None, part: str = CHUNKS) -> dict[str, Any]:
    """``MilvusDocumentStore`` init parameters (as Haystack serializes them) for one of the base's collections:
    the serving generation's unless ``generation`` says which; its chunks, or their parents (looked up by id, never
    searched). The URI comes from settings."""
    if part == PARENTS:
        return {"collection_name": collection_name(base, generation, PARENTS), "consistency_level": "Strong"}
    return {"collection_name": collection_name(base, generation), "consistency_level": "Strong",
            # cosine, so scores read 0..1 ((cosine + 1) / 2, higher is closer) and a threshold means the same in
            # every base;
            # IVF_FLAT: milvus-lite's default index searched 50,000 chunks in p95 ~356 ms here, this one in ~138 ms
            # (bench/knowledge.py). Rows not yet sealed into the index are searched exactly.
            "index_params": {"metric_type": "COSINE", "index_type": "IVF_FLAT", "params": {"nlist": 256}},
            "search_params": {"metric_type": "COSINE", "params": {"nprobe": 16}},
            # Milvus computes a BM25 sparse vector from each chunk's text as it is written: keyword and hybrid
            # retrieval work on every base without a re-index.
            "text_field": TEXT_FIELD, "sparse_vector_field": SPARSE_FIELD, "builtin_function": [BM25_FUNCTION]}


_stores: dict[tuple[str, str], Any] = {}
_stores_lock = threading.Lock()


def document_store(base: KnowledgeBase, settings: Settings, generation: int | None = None,
                   part: str = CHUNKS) -> Any:
    """The ``MilvusDocumentStore`` of one of the base's collections, kept per process and collection: opening
    one costs ~160 ms at 50,000 chunks, more than the search."""
    from milvus_haystack.function import BM25BuiltInFunction

    from nodes.stores import ensure_vector_store, milvus_document_store

    key = (ensure_vector_store(settings), collection_name(base, generation, part))
    with _stores_lock:
        if key not in _stores:
            params = store_parameters(base, generation, part)
            if "builtin_function" in params:
                params["builtin_function"] = [BM25BuiltInFunction.from_dict(f) for f in params["builtin_function"]]
            _stores[key] = milvus_document_store(settings=settings, **params)
        return _stores[key]


def base_collections(settings: Settings) -> dict[str, list[str]]:
    """Every knowledge-base collection in the vector store, by base id."""
    from nodes.stores import list_collections

    found: dict[str, list[str]] = {}
    for name in list_collections(settings):
        if matched := COLLECTION.fullmatch(name):
            found.setdefault(matched.group(1), []).append(name)
    return found


def drop_generation(base: KnowledgeBase, generation: int, settings: Settings) -> None:
    """Drop one generation's collections (an abandoned re-index), and the stores this process kept for them."""
    for part in (CHUNKS, PARENTS):
        _drop(collection_name(base, generation, part), settings)


def _drop(name: str, settings: Settings) -> None:
    """Drop collection ``name``, forgetting this process's store and existence answer for it."""
    from nodes.stores import drop_collection, ensure_vector_store

    with _stores_lock:
        _stores.pop((ensure_vector_store(settings), name), None)
        _existing.discard((ensure_vector_store(settings), name))
    drop_collection(name, settings)


def drop_generations(kb_id: str, settings: Settings, *, up_to: int | None = None) -> list[str]:
    """Drop a base's collections (those of generations ``up_to`` and older; all without it) and the stores this
    process kept for them; the names dropped."""
    from nodes.stores import list_collections

    pattern = re.compile(rf"kb_{re.escape(kb_id)}_g(\d+)(?:{PARENTS})?")
    dropped = [name for name in list_collections(settings) if (found := pattern.fullmatch(name))
               and (up_to is None or int(found.group(1)) <= up_to)]
    for name in dropped:
        _drop(name, settings)
    return dropped


_existing: set[tuple[str, str]] = set()


def exists(collection: str, settings: Settings) -> bool:
    """Whether ``collection`` is in the vector store; a yes is remembered by this process (asking costs a
    connection, more than a keyword search), until this process drops it. A base's serving collection is only
    dropped with the base, after its rows are gone."""
    from nodes.stores import ensure_vector_store, has_collection

    key = (ensure_vector_store(settings), collection)
    if key in _existing:
        return True
    if has_collection(collection, settings):
        _existing.add(key)
        return True
    return False


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


def ranker(model: str, settings: Settings) -> Any:
    """A warm cross-encoder ranker for ``model`` (the palette's 'Cross-encoder ranker' node), kept per process."""
    with _embedders_lock:
        if ("Ranker", model) not in _embedders:
            from haystack_integrations.components.rankers.sentence_transformers import (
                SentenceTransformersSimilarityRanker,
            )

            component = SentenceTransformersSimilarityRanker(model=settings.local_model_path(model) or model)
            component.warm_up()
            _embedders[("Ranker", model)] = component
        return _embedders[("Ranker", model)]


def text_embedder(model: str, settings: Settings) -> Any:
    return _warm("Text", model, settings)


def document_embedder(model: str, settings: Settings) -> Any:
    return _warm("Document", model, settings)


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    score: float                     # on the mode's scale (``knowledge.settings.SCALES``)
    text: str
    meta: dict[str, Any]
    dense: float | None = None       # hybrid: the chunk's dense score (cosine as (cos + 1) / 2)
    keyword: float | None = None     # hybrid: its BM25 score, None when no word of the query is in it
    chunks: tuple[str, ...] = ()     # parent–child: a parent answered, for these of its chunks that matched


def retriever(mode: str, store: Any, top_k: int) -> Any:
    """The Milvus retriever component a workflow node uses for ``mode``."""
    from milvus_haystack import MilvusEmbeddingRetriever, MilvusHybridRetriever
    from milvus_haystack.milvus_embedding_retriever import MilvusSparseEmbeddingRetriever

    cls = {"dense": MilvusEmbeddingRetriever, "keyword": MilvusSparseEmbeddingRetriever,
           "hybrid": MilvusHybridRetriever}[mode]
    return cls(document_store=store, top_k=top_k)


def _legs(store: Any, embedding: list[float], query: str, ids: list[str]) -> dict[str, dict[str, float]]:
    """What each leg makes of the hybrid's hits: their dense score (cosine similarity to the query from their
    stored vectors, a key lookup, on the dense mode's scale) and their BM25 score (one keyword search among
    them; absent where no query word occurs). Two more searches would cost ~25 ms each here, the lookup ~1 ms."""
    import numpy as np

    rows = store.client.get(store.collection_name, ids=ids, output_fields=["vector"])
    query_vector = np.asarray(embedding, dtype=np.float32)
    dense = {}
    for row in rows:
        vector = np.asarray(row["vector"], dtype=np.float32)
        norms = float(np.linalg.norm(query_vector) * np.linalg.norm(vector)) or 1.0
        dense[row["id"]] = (float(np.dot(query_vector, vector)) / norms + 1) / 2   # on the dense mode's scale
    keyword = retriever("keyword", store, len(ids)).run(
        query_text=query, filters={"field": "id", "operator": "in", "value": ids})["documents"]
    return {"dense": dense, "keyword": {d.id: d.score for d in keyword}}


def keyword_score(score: float | None) -> float:
    """BM25 as a positive number: milvus-lite reports it negated (a distance), a Milvus server as is."""
    return abs(score or 0.0)


def retrieve(base: KnowledgeBase, query: str, settings: Settings, *, mode: str | None = None,
             top_k: int | None = None, score_threshold: float | None = None, rank: bool | None = None) -> list[Hit]:
    """The base's chunks for ``query``, best first, scored on the mode's scale; none before anything of the base
    was embedded. Hybrid hits also carry their dense and BM25 scores."""
    if not query.strip() or len(query) > MAX_QUERY_CHARS:
        raise BadQuery(f"query must be 1-{MAX_QUERY_CHARS} characters.", field="query")
    asked = settings_for(base.retrieval, mode=mode, top_k=top_k, score_threshold=score_threshold, rank=rank)
    if not exists(collection_name(base), settings):   # nothing embedded yet (or every document failed)
        return []
    store = document_store(base, settings)
    if asked.mode != "dense" and SPARSE_FIELD not in store.fields:
        raise NeedsReindex(f"Knowledge base '{base.name}' was indexed before keyword search existed: its collection "
                           f"has no BM25 field. Re-index it once (POST /api/v1/knowledge-bases/{base.name}/reindex, "
                           "same settings) for keyword and hybrid; dense works meanwhile.", field="mode")
    embedding = None if asked.mode == "keyword" else \
        text_embedder(base.embedding_model, settings).run(text=query)["embedding"]
    inputs = {"dense": {"query_embedding": embedding}, "keyword": {"query_text": query},
              "hybrid": {"query_embedding": embedding, "query_text": query}}
    fetched = asked.candidates if asked.ranker else asked.top_k
    documents = retriever(asked.mode, store, fetched).run(**inputs[asked.mode])["documents"]
    legs = _legs(store, embedding, query, [d.id for d in documents]) if asked.mode == "hybrid" and documents \
        else {"dense": {}, "keyword": {}}
    if asked.ranker and documents:   # what a ranker node after the retriever returns
        documents = ranker(asked.ranker, settings).run(query=query, documents=documents, top_k=asked.top_k)["documents"]
    hits = []
    for document in documents:
        score = keyword_score(document.score) if asked.mode == "keyword" and not asked.ranker \
            else float(document.score or 0.0)
        if asked.score_threshold is not None and score < asked.score_threshold:
            continue
        keyword = legs["keyword"].get(document.id)
        hits.append(Hit(document.id, score, document.content or "", dict(document.meta),
                        dense=legs["dense"].get(document.id),
                        keyword=None if keyword is None else keyword_score(keyword)))
    if base.chunking.get("parent_length") and hits:
        merged = merge(base, settings, [d for d in documents if d.id in {h.chunk_id for h in hits}],
                       asked.merge_threshold)
        hits = _merged_hits(hits, merged)
    return hits


def merge(base: KnowledgeBase, settings: Settings, documents: list[Any], share: float) -> list[Any]:
    """What Haystack's auto-merging retriever (the node after a retriever on a parent–child base) makes of the
    chunks found: each parent more than ``share`` of whose chunks are among them, in their place."""
    from haystack.components.retrievers.auto_merging_retriever import AutoMergingRetriever

    merger = AutoMergingRetriever(document_store=document_store(base, settings, part=PARENTS),
                                  threshold=parents.merge_threshold(share))
    try:
        return merger.run(documents=documents)["documents"]
    except ValueError as exc:         # a chunk without its parent: written by an older Stackyard, or a lost write
        raise NeedsReindex(f"Knowledge base '{base.name}' has chunks whose parent is missing ({exc}). Re-index it "
                           f"once (POST /api/v1/knowledge-bases/{base.name}/reindex, same settings).",
                           field="knowledge_base") from None


def _merged_hits(hits: list[Hit], merged: list[Any]) -> list[Hit]:
    """Hits after merging, best first: a parent scores as its best chunk, and says which of its chunks matched."""
    by_id = {hit.chunk_id: hit for hit in hits}
    out = []
    for document in merged:
        if document.id in by_id:
            out.append(by_id[document.id])
            continue
        kids = [by_id[kid] for kid in document.meta.get(parents.CHILDREN) or [] if kid in by_id]
        if not kids:                  # a parent listing none of the chunks found: keep those chunks instead
            out += [hit for hit in hits if hit.meta.get(parents.PARENT) == document.id]
            continue
        meta = {k: v for k, v in document.meta.items() if k not in (parents.CHILDREN, parents.LEVEL,
                                                                     parents.BLOCK_SIZE)}
        out.append(Hit(document.id, max(k.score for k in kids), document.content or "", meta,
                       chunks=tuple(k.chunk_id for k in kids)))
    return sorted(out, key=lambda hit: -hit.score)


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


def forget_document(base: KnowledgeBase, document_id: str, settings: Settings) -> None:
    """Remove a deleted document's vectors (and parents) from the serving generation and the one a re-index
    builds."""
    for generation in (base.generation, base.next_generation):
        for part in (CHUNKS, PARENTS):
            if generation is not None and exists(collection_name(base, generation, part), settings):
                store = document_store(base, settings, generation, part)
                store.delete_documents([d.id for d in store.filter_documents(
                    {"field": "meta.kb_document_id", "operator": "==", "value": document_id})])


def write_parents(base: KnowledgeBase, generation: int, document_id: str, chunks: list[Any], texts: dict[str, str],
                  chunking: Any, settings: Settings) -> None:
    """Write the parents the switched-on ``chunks`` of one document (all of its chunks are given) answer with into
    the generation's parents collection, and remove those of the document's it no longer needs."""
    from haystack.document_stores.types import DuplicatePolicy

    made = parents.parent_documents(document_id, chunks, texts, parent_length=chunking.parent_length)
    store = document_store(base, settings, generation, PARENTS)
    if made:
        store.write_documents(made, policy=DuplicatePolicy.OVERWRITE)
    if made or exists(collection_name(base, generation, PARENTS), settings):
        keep = {d.id for d in made}
        stale = [d.id for d in store.filter_documents({"field": "meta.kb_document_id", "operator": "==",
                                                       "value": document_id}) if d.id not in keep]
        if stale:
            store.delete_documents(stale)


def reindex_chunk(base: KnowledgeBase, chunk: Any, document: Any, settings: Settings) -> None:
    """Bring one chunk's vector in line with its row in the generation its document's chunks are in: embedded
    again if it and its document are switched on (its text may have changed), removed from the index if not.
    Under parent–child, an edited or hand-added chunk answers with itself (``knowledge.parents``)."""
    from haystack import Document
    from haystack.document_stores.types import DuplicatePolicy

    generation = document.generation
    if generation not in (base.generation, base.next_generation) or not exists(collection_name(base, generation),
                                                                               settings):
        return                       # never indexed (or in a generation being dropped): indexing writes it
    building = generation == base.next_generation
    model = (base.next_embedding_model or base.embedding_model) if building else base.embedding_model
    chunking = (base.next_chunking or base.chunking) if building else base.chunking
    store = document_store(base, settings, generation)
    if not (chunk.enabled and document.enabled):
        store.delete_documents([chunk.id])
        if chunking.get("parent_length"):
            _rewrite_parents(base, generation, document, Chunking(**chunking), settings)
        return
    meta = {**chunk.meta, "kb_document_id": chunk.document_id, "position": chunk.position}
    if chunking.get("parent_length"):
        meta.update(parents.chunk_meta(chunk, chunking["length"]))
        _rewrite_parents(base, generation, document, Chunking(**chunking), settings)   # before it can be found
    embedding = text_embedder(model, settings).run(text=chunk.text)["embedding"]
    store.write_documents([Document(id=chunk.id, content=chunk.text, embedding=embedding, meta=meta)],
                          policy=DuplicatePolicy.OVERWRITE)


def _rewrite_parents(base: KnowledgeBase, generation: int, document: Any, chunking: Chunking,
                     settings: Settings) -> None:
    """The document's parents again from its chunks as they are in SQL now (a chunk switched, edited or added)."""
    from sqlmodel import select

    from knowledge.models import KbChunk
    from store.db import session_scope

    with session_scope() as session:
        rows = list(session.exec(select(KbChunk).where(KbChunk.document_id == document.id)).all())
        session.expunge_all()
    write_parents(base, generation, document.id, rows if document.enabled else [], {}, chunking, settings)
